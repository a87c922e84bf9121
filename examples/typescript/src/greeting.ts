// The greeting the server answers with: the file a deploy edits.
export function greeting(name: string): string {
  return `hello, ${name}`;
}
