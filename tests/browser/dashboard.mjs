// The dashboard in headless chromium (playwright-core), run by
// test_dashboard.py against a live orderd. Environment: DASH_URL,
// DASH_TOKEN, DASH_ORDER (an order that failed), DASH_REPLICA (the
// replica id the history must name), DASH_ART (screenshot
// directory), DASH_NODE_MODULES (build/test-node/node_modules).
// Prints "ok - ..." / "not ok - ..." lines, a final "RESULT {json}", and
// exits non-zero when any check failed.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.DASH_NODE_MODULES, "x.js"));
const { chromium } = require("playwright-core");
import fs from "node:fs";
// Evaluated over the DevTools protocol: the page's CSP (no inline script)
// stays on and is not in the way.
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const URL = process.env.DASH_URL;
const TOKEN = process.env.DASH_TOKEN;
const ORDER = process.env.DASH_ORDER;
const REPLICA = process.env.DASH_REPLICA;
const ART = process.env.DASH_ART;
const result = { requeued: 0 };
let failed = 0;

function check(ok, what, detail) {
  console.log((ok ? "ok - " : "not ok - ") + what + (detail && !ok ? ": " + detail : ""));
  if (!ok) failed++;
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function axe(page, label) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ["violations"] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, n: v.nodes.length,
      help: v.help, target: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  for (const v of r) console.log("# axe " + label + ": " + v.impact + " " + v.id + " (" + v.n + ") " + v.help + " " + JSON.stringify(v.target));
  const bad = r.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(bad.length === 0, "axe-core " + label + ": no serious or critical violations",
    bad.map((v) => v.id).join(", "));
  result["axe_" + label] = r.length;
}

async function boxes(page) {
  return page.evaluate(() => [...document.querySelectorAll(".tile, .chart")].map((e) => {
    const b = e.getBoundingClientRect();
    return [Math.round(b.x + scrollX), Math.round(b.y + scrollY), Math.round(b.width), Math.round(b.height)].join(",");
  }));
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const t0 = Date.now();
try {
  // ---- desktop, light -------------------------------------------------
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "light" });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // A CSP violation is a console error too: the page must need no inline code.
  page.on("console", (m) => { if (m.type() === "error" && !/status of (401|404)/.test(m.text())) errors.push(m.text()); });
  await page.goto(URL + "/");

  // The prompt: a refused token says so, the right one closes it.
  const dlg = page.locator("dialog#auth");
  await dlg.waitFor({ state: "visible", timeout: 5000 });
  check(await page.evaluate(() => document.activeElement && document.activeElement.id === "auth-token"),
    "the auth prompt is open and focused on its labelled input");
  await page.getByLabel("API token", { exact: true }).fill("wrong-token");
  await page.keyboard.press("Enter");
  await page.locator("#auth-error", { hasText: "refused" }).waitFor({ timeout: 5000 });
  check(true, "a wrong token is refused in the prompt");
  await page.getByLabel("API token", { exact: true }).fill(TOKEN);
  await page.getByRole("button", { name: "Use token" }).click();
  await dlg.waitFor({ state: "hidden", timeout: 5000 });
  check(await page.evaluate(() => sessionStorage.getItem("orderd.token")) === TOKEN,
    "the token is kept in sessionStorage");

  // Figures arrive; the charts move.
  await page.waitForFunction(() => document.getElementById("t-submitted").textContent !== "–", null, { timeout: 10000 });
  await sleep(1500);
  const before = await page.evaluate(() => ({
    img: document.getElementById("c-throughput").toDataURL(),
    pts: Number(document.getElementById("c-throughput").dataset.points || 0),
  }));
  const boxesBefore = await boxes(page);
  await sleep(4000);
  const after = await page.evaluate(() => ({
    img: document.getElementById("c-throughput").toDataURL(),
    pts: Number(document.getElementById("c-throughput").dataset.points || 0),
    mode: document.getElementById("m-mode").dataset.mode,
    submitted: document.getElementById("t-submitted").textContent,
  }));
  check(after.pts > before.pts, "the throughput chart gained points", before.pts + " -> " + after.pts);
  check(after.img !== before.img, "the throughput chart's drawing changed");
  check(after.mode === "live" || after.mode === "poll", "data mode is live or polling", after.mode);
  result.mode = after.mode;
  console.log("# data mode: " + after.mode + ", submitted/s tile: " + after.submitted);

  // A failed order's group; requeue it.
  const row = page.locator("#failures tbody tr", { has: page.getByRole("button", { name: /^Requeue/ }) }).first();
  await row.waitFor({ timeout: 15000 });
  const fp = (await row.locator("td").first().textContent()).trim();
  check(/^[0-9a-f]{16}$/.test(fp), "a failure group is listed under its fingerprint", fp);
  await row.getByRole("button", { name: /^Requeue/ }).click();
  const st = page.locator("#status", { hasText: /Requeued \d+ order/ });
  await st.waitFor({ state: "attached", timeout: 5000 });
  const m = /Requeued (\d+)/.exec(await st.textContent());
  result.requeued = m ? Number(m[1]) : 0;
  check(result.requeued >= 1, "requeue answered", await st.textContent());

  // Dead notifications with a redeliver button.
  const dead = page.locator("#dead tbody button", { hasText: "Redeliver" }).first();
  try {
    await dead.waitFor({ timeout: 10000 });
    await dead.click();
    await page.locator("#status", { hasText: /queued for delivery again/ }).waitFor({ state: "attached", timeout: 5000 });
    check(true, "a dead notification is listed and redelivered");
  } catch (e) {
    check(false, "a dead notification is listed and redelivered", String(e).split("\n")[0]);
  }

  // Lookup: the order and its history.
  await page.getByLabel("Order id").fill(ORDER);
  await page.getByRole("button", { name: "Look up", exact: true }).click();
  await page.locator("#order h3", { hasText: "Order " + ORDER }).waitFor({ timeout: 5000 });
  check(true, "lookup shows order " + ORDER);
  const hist = page.locator("#history");
  await page.waitForFunction(() => document.querySelector("#history") ||
    /History unavailable/.test(document.getElementById("order").textContent), null, { timeout: 5000 });
  const evs = await hist.locator("tbody tr td:nth-child(2)").allTextContents();
  check(evs[0] === "submit" && evs.length >= 2, "the history starts with submit and goes on", evs.join(" "));
  result.history = evs;
  const reps = await hist.locator("tbody tr td:nth-child(3)").allTextContents();
  check(reps[0] === "–" && reps.length > 1 && reps.slice(1).every((r) => r === REPLICA),
    "the history names the replica of every transition", reps.join(" "));
  const notes = await page.locator("#order-notifications tbody tr td:nth-child(2)").allTextContents();
  check(notes.includes("order.failed"), "the lookup lists the order's notifications", notes.join(" "));
  await page.getByLabel("Order id").fill("no-such-order-42");
  await page.keyboard.press("Enter");
  await page.locator("#order .msg", { hasText: "No order with id no-such-order-42" }).waitFor({ timeout: 5000 });
  check(true, "an unknown id says so");
  // Put the real order back for the screenshot.
  await page.getByLabel("Order id").fill(ORDER);
  await page.keyboard.press("Enter");
  await page.locator("#order h3", { hasText: "Order " + ORDER }).waitFor({ timeout: 5000 });

  // Set stock by keyboard.
  await page.getByLabel("SKU", { exact: true }).fill("SKU-DASH");
  await page.getByLabel("Stock", { exact: true }).fill("777");
  await page.getByLabel("Stock", { exact: true }).press("Enter");
  await page.locator("#status", { hasText: "Stock of SKU-DASH set to 777" }).waitFor({ state: "attached", timeout: 5000 });
  check(true, "set-stock answered");

  const boxesAfter = await boxes(page);
  const moved = boxesBefore.filter((b, i) => b !== boxesAfter[i]);
  check(moved.length === 0, "tiles and charts kept their size and place while data streamed",
    moved.length + " boxes moved: " + moved.join(" ") + " -> " + boxesAfter.filter((b, i) => b !== boxesBefore[i]).join(" "));

  // DASH_SETTLE_MS (the docs' screenshots): let a few minutes of data
  // gather first. The failure groups come back as requeued orders fail again.
  await sleep(Number(process.env.DASH_SETTLE_MS || 0));
  await page.locator("#failures tbody button").first().waitFor({ timeout: 15000 }).catch(() => {});
  await page.evaluate(() => scrollTo(0, 0));
  await axe(page, "desktop-light");
  await page.screenshot({ path: path.join(ART, "dashboard-desktop.png") });
  await page.screenshot({ path: path.join(ART, "dashboard-desktop-full.png"), fullPage: true });
  // The phone screenshot from this page, resized and switched to the dark
  // scheme, so its charts hold what was gathered so far.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "dark" });
  await sleep(1200);
  await page.evaluate(() => scrollTo(0, 0));
  await page.screenshot({ path: path.join(ART, "dashboard-phone.png") });
  check(errors.length === 0, "no script errors on the page", errors.join(" | "));
  await ctx.close();

  // ---- phone, dark: the token from the session, keyboard focus visible --
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
    colorScheme: "dark", isMobile: true, hasTouch: true });
  await phone.addInitScript((t) => sessionStorage.setItem("orderd.token", t), TOKEN);
  const pp = await phone.newPage();
  // The stream parser, whatever /v1/events this tree has: frames as SPEC.md
  // item 3 shapes them (split oddly, CRLF in one), then the stream ends and
  // the page falls back to polling.
  const stats = await (await fetch(URL + "/v1/stats", { headers: { Authorization: "Bearer " + TOKEN } })).json();
  let streamAuth = null;
  await pp.route("**/v1/events", (route) => {
    streamAuth = route.request().headers()["authorization"];
    const ord = { id: "mock-order-1", status: "completed", event: "complete", at: new Date().toISOString(),
      fence: 7, replica: "replica-mock", reason: null };
    route.fulfill({ status: 200, contentType: "text/event-stream",
      body: "retry: 2000\n\n: keepalive\n\nevent: stats\ndata: " + JSON.stringify(stats) +
        "\n\nevent: order\r\ndata: " + JSON.stringify(ord) + "\r\n\r\n" });
  });
  await pp.goto(URL + "/");
  await pp.locator("#feed li", { hasText: "mock-order-1" }).waitFor({ timeout: 10000 })
    .then(() => check(true, "event-stream frames are parsed (mocked stream): the transition is listed"),
      (e) => check(false, "event-stream frames are parsed (mocked stream)", String(e).split("\n")[0]));
  check(streamAuth === "Bearer " + TOKEN, "the stream request carries the bearer token", streamAuth);
  await pp.unroute("**/v1/events");
  await pp.waitForFunction(() => document.getElementById("t-submitted").textContent !== "–", null, { timeout: 10000 });
  await pp.locator("#failures tbody tr").first().waitFor({ timeout: 10000 });
  await sleep(2500);
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "no horizontal scrolling at 390 px", overflow + " px too wide");
  await pp.setViewportSize({ width: 360, height: 740 });
  await sleep(300);
  const o360 = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(o360 <= 0, "no horizontal scrolling at 360 px", o360 + " px too wide");
  await pp.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  await axe(pp, "phone-dark");
  await pp.screenshot({ path: path.join(ART, "dashboard-phone-fresh.png") });
  await pp.screenshot({ path: path.join(ART, "dashboard-phone-full.png"), fullPage: true });
  await phone.close();
} catch (e) {
  check(false, "the run completed", String(e && e.stack || e));
} finally {
  await browser.close();
}
result.seconds = (Date.now() - t0) / 1000;
console.log("RESULT " + JSON.stringify(result));
process.exit(failed ? 1 : 0);
