// The profile form: an "Other..." choice shows its text field, as KubeSpawner's form does.
"use strict";
for (const select of document.querySelectorAll(".js-profile-option-select")) {
  const text = document.getElementById(select.id + "--unlisted-choice");
  if (!text) continue;
  const update = () => {
    const unlisted = select.value === "unlisted-choice";
    text.classList.toggle("hidden", !unlisted);
    text.required = unlisted && select.closest(".profile").querySelector("input[type=radio]").checked;
  };
  select.addEventListener("change", update);
  for (const radio of document.querySelectorAll("input[name=profile]")) radio.addEventListener("change", update);
  update();
}
