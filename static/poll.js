// While a second factor waits for an approval (a Duo push, a call, Duo Mobile's
// activation), asks the server again every few seconds without reloading the page: it
// sends the page's own "Check now" form. 202 means still waiting; anything else is the
// next page, shown in place (or followed, after a redirect). Without JavaScript, the
// button does the same.
(function () {
  "use strict";
  var form = document.getElementById("poll-form");
  if (!form) {
    return;
  }
  var status = document.getElementById("waiting");
  var every = 2000;
  function poll() {
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    })
      .then(function (response) {
        if (response.status === 202) {
          window.setTimeout(poll, every);
          return null;
        }
        if (response.redirected) {
          window.location.assign(response.url);
          return null;
        }
        return response.text().then(function (html) {
          document.open();
          document.write(html);
          document.close();
        });
      })
      .catch(function () {
        status.textContent = "Cannot reach the server; trying again.";
        window.setTimeout(poll, every * 3);
      });
  }
  window.setTimeout(poll, every);
})();
