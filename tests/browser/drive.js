// Drives Debian's chromium through playwright-core for tests/integration/test_browser.py.
// Reads one JSON object on stdin (page URL, API URL and key, user, intervals), runs the
// scenario and prints one JSON object with what it saw; the Python side asserts.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getStatus(cfg) {
  const r = await fetch(cfg.api + "/get_user_status", {
    method: "POST",
    headers: { "X-API-Key": cfg.apiKey, "Content-Type": "application/json" },
    body: JSON.stringify({ users: [cfg.user] }),
  });
  return (await r.json()).result.statuses[0];
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(0, "utf8"));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ustatus-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const out = { phases: {} };
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    const calls = [];  // every response of the client endpoints, with its request's time
    const sentAt = new Map();
    page.on("request", (req) => sentAt.set(req, Date.now() / 1000));
    page.on("response", async (resp) => {
      const u = new URL(resp.url());
      if (!u.pathname.startsWith("/client/")) return;
      // The request's time, not the response's: under load replies may bunch up. The
      // browser's own start time of the request, not when its event reached this process
      // (events come late and unevenly on a loaded machine; a gap could look 80 ms short).
      const timing = resp.request().timing();
      const t = timing && timing.startTime > 0 ? timing.startTime / 1000
                                               : sentAt.get(resp.request()) || Date.now() / 1000;
      const h = resp.headers();
      calls.push({ t, path: u.pathname, status: resp.status(),
                   acao: h["access-control-allow-origin"] || null, body: await resp.text() });
    });
    const take = () => calls.splice(0, calls.length).sort((a, b) => a.t - b.t);

    await page.goto(cfg.page);
    // 1. No input: only the heartbeat.
    await sleep(cfg.heartbeat * 3);
    out.phases.idle = { calls: take(), status: await getStatus(cfg) };

    // 2. A burst of synthetic input: pointer moves, clicks and typing for ~1.5 s.
    out.burstStart = Date.now() / 1000;
    let events = 0;
    await page.click("#text");
    events++;
    for (let i = 0; i < 30; i++) {
      await page.mouse.move(20 + 7 * i, 30 + (i % 5) * 11);
      events++;
      await sleep(15);
    }
    await page.keyboard.type("typing quickly", { delay: 40 });
    events += 14;
    out.burstEnd = Date.now() / 1000;
    out.events = events;
    await sleep(cfg.activity + 600);  // the trailing call
    out.phases.burst = { calls: take(), status: await getStatus(cfg) };

    // 3. Hidden tab: no heartbeat, input ignored; visible again: online at once.
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await sleep(200);
    take();  // a call already on its way when the tab was hidden
    await sleep(cfg.heartbeat * 2.5);
    await page.keyboard.type("x");
    await sleep(300);
    out.phases.hidden = { calls: take() };
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await sleep(400);
    out.phases.visible = { calls: take() };

    // 4. After stop(): nothing at all.
    await page.evaluate(() => window.tracker.stop());
    await sleep(200);
    take();
    for (let i = 0; i < 10; i++) await page.mouse.move(5 * i, 5 * i);
    await page.keyboard.type("zz");
    await sleep(cfg.heartbeat * 2);
    out.phases.stopped = { calls: take() };

    out.errors = await page.evaluate(() => window.errors);
    out.tokenCalls = await page.evaluate(() => window.tokenCalls);
    out.final = await getStatus(cfg);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  console.error(e && e.stack || e);
  process.exit(1);
});
