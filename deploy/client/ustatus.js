/*
 * ustatus.js: reports a browser user's activity and presence to ustatus's client
 * endpoints (POST <client.handler_prefix>/update_user_status and /online), authenticated
 * with the user's Centrifugo connection JWT. No dependencies.
 *
 *   var tracker = UStatus.create({
 *     endpoint: "https://status.example.com/client",  // client.handler_prefix as a URL
 *     getToken: function () { return fetch("/token").then(function (r) { return r.text(); }); },
 *   });
 *   tracker.start();
 *
 * Activity (pointer, keys, wheel, touch, window focus, the tab becoming visible) sends
 * update_user_status at most once per activityInterval: the first event at once, later
 * ones folded into one trailing call, so the stored `active` trails real activity by at
 * most activityInterval. While the tab is visible, /online is sent every
 * heartbeatInterval (skipped when an update just went out: it sets `online` too).
 */
(function (root, factory) {
  "use strict";
  var api = factory(root);
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.UStatus = api;
  }
})(typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var ACTIVITY_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"];

  function create(options) {
    var o = options || {};
    if (!o.endpoint) {
      throw new Error("UStatus.create: endpoint is required");
    }
    if (!o.token && !o.getToken) {
      throw new Error("UStatus.create: token or getToken is required");
    }
    var endpoint = String(o.endpoint).replace(/\/+$/, "");
    var activityInterval = o.activityInterval > 0 ? o.activityInterval : 10000;
    var heartbeatInterval = o.heartbeatInterval > 0 ? o.heartbeatInterval : 30000;
    var onError = typeof o.onError === "function" ? o.onError : function () {};
    var doc = root.document;

    var running = false;
    var token = o.token || null;
    var lastActivitySent = 0;   // Date.now() of the last update_user_status sent
    var lastSent = 0;           // of any call (both set `online`)
    var trailingTimer = null;
    var heartbeatTimer = null;

    function visible() {
      return !doc || doc.visibilityState !== "hidden";
    }

    function currentToken(refresh) {
      if (token && !refresh) {
        return Promise.resolve(token);
      }
      if (!o.getToken) {
        return Promise.resolve(token);
      }
      return Promise.resolve(o.getToken()).then(function (t) {
        token = t;
        return t;
      });
    }

    function post(path, body, refresh) {
      return currentToken(refresh).then(function (t) {
        return root.fetch(endpoint + path, {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          keepalive: true,
          headers: { "Authorization": "Bearer " + t, "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      }).then(function (resp) {
        // 401: missing, invalid (101) or expired (109) token. With getToken, ask for a
        // fresh one and try once more; never loop.
        if (resp.status === 401 && o.getToken && !refresh) {
          return post(path, body, true);
        }
        return resp.json().catch(function () { return {}; }).then(function (j) {
          if (!resp.ok || j.error) {
            var e = new Error("ustatus " + path + ": " + (j.error ? j.error.code + " " + j.error.message
                                                                   : "HTTP " + resp.status));
            e.status = resp.status;
            e.code = j.error ? j.error.code : 0;
            throw e;
          }
          return j;
        });
      });
    }

    function send(path, body) {
      lastSent = Date.now();
      return post(path, body, false).catch(function (e) {
        onError(e);
      });
    }

    function sendActivity() {
      trailingTimer = null;
      if (!running) {
        return;
      }
      lastActivitySent = Date.now();
      send("/update_user_status", {});
    }

    function activity() {
      if (!running || !visible()) {
        return;
      }
      var wait = lastActivitySent + activityInterval - Date.now();
      if (wait <= 0 && trailingTimer === null) {
        sendActivity();
      } else if (trailingTimer === null) {
        trailingTimer = root.setTimeout(sendActivity, Math.max(wait, 0));
      }
    }

    function heartbeat() {
      if (!running || !visible()) {
        return;
      }
      // An update that went out recently already refreshed `online`.
      if (Date.now() - lastSent < heartbeatInterval / 2) {
        return;
      }
      send("/online", {});
    }

    function startHeartbeat() {
      if (heartbeatTimer === null) {
        heartbeatTimer = root.setInterval(heartbeat, heartbeatInterval);
      }
    }

    function stopHeartbeat() {
      if (heartbeatTimer !== null) {
        root.clearInterval(heartbeatTimer);
        heartbeatTimer = null;
      }
    }

    function onVisibility() {
      if (!running) {
        return;
      }
      if (visible()) {
        heartbeat();
        startHeartbeat();
        activity();
      } else {
        stopHeartbeat();
      }
    }

    var listenOpts = { passive: true, capture: true };

    function start() {
      if (running) {
        return;
      }
      running = true;
      ACTIVITY_EVENTS.forEach(function (name) {
        root.addEventListener(name, activity, listenOpts);
      });
      root.addEventListener("focus", activity, listenOpts);
      if (doc) {
        doc.addEventListener("visibilitychange", onVisibility, listenOpts);
      }
      if (visible()) {
        send("/online", {});
        startHeartbeat();
      }
    }

    function stop() {
      if (!running) {
        return;
      }
      running = false;
      ACTIVITY_EVENTS.forEach(function (name) {
        root.removeEventListener(name, activity, listenOpts);
      });
      root.removeEventListener("focus", activity, listenOpts);
      if (doc) {
        doc.removeEventListener("visibilitychange", onVisibility, listenOpts);
      }
      stopHeartbeat();
      if (trailingTimer !== null) {
        root.clearTimeout(trailingTimer);
        trailingTimer = null;
      }
    }

    return {
      start: start,
      stop: stop,
      // For the application to report activity the browser cannot see (a message sent
      // from a worker, a voice call going on...).
      activity: activity,
      // Sets the user's state ("" removes it) and counts as activity.
      setState: function (state) {
        lastActivitySent = Date.now();
        return send("/update_user_status", { state: String(state) });
      },
      get running() {
        return running;
      },
    };
  }

  return { create: create };
});
