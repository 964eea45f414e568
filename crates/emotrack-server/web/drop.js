// A drop zone that is also a file picker: a <label> around a file input, so a click, Enter or
// Space on it opens the picker, and a file dropped on it is taken as if picked.

/** Calls `onFile(file)` for a file dropped on `zone` or picked with `input`. */
export function whenDropped(zone, input, onFile) {
  input.addEventListener("change", () => {
    const [file] = input.files;
    if (file) onFile(file);
    input.value = ""; // the same file again is a new choice
  });
  input.tabIndex = -1; // the zone itself takes the focus
  zone.tabIndex = 0;
  zone.setAttribute("role", "button");
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const [file] = event.dataTransfer?.files ?? [];
    if (file) onFile(file);
  });
}
