// Suggests the browser's time zone in an empty time-zone field (`data-browser-zone`).
// Without script the field stays empty, which means the list's zone: the form works the same.
(function () {
  "use strict";
  var zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  var fields = document.querySelectorAll("input[data-browser-zone]");
  for (var index = 0; index < fields.length; index += 1) {
    if (!fields[index].value) {
      fields[index].value = zone;
    }
  }
})();
