export function render(id, text) {
  document.getElementById(id).textContent = text;
}
