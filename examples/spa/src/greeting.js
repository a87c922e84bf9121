// The greeting the page shows: the file a deploy edits.
export function greeting(name) {
  return `hello, ${name}`;
}
