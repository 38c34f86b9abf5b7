// The console works without scripts; this only asks before a rejection, which cannot be undone.
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[action='/inbox/reject']")) {
    form.addEventListener("submit", (event) => {
      const ref = form.querySelector("input[name='ref']").value;
      if (!window.confirm(`Reject ${ref}? A rejected version cannot be approved again.`)) {
        event.preventDefault();
      }
    });
  }
});
