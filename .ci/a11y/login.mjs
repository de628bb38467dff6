// The dev identity provider's sign-in page in a real browser, with JavaScript off (it must work without
// it): axe-core, reflow at 320 CSS pixels (400% zoom), every test user's NHS number visible, a
// screenshot, then signing in as the first test user by keyboard alone.
//
// usage: node login.mjs <login-page-url> <out-dir>
// Environment: CHROMIUM, the browser to drive (default /usr/bin/chromium).
// Prints one JSON object: {"failures": [...], "notes": [...], "screenshots": [...]}; exits 1 on any failure.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { launch, newPage } from "./browser.mjs";

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const [loginURL, out] = process.argv.slice(2);
if (!loginURL || !out) {
  console.error("usage: node login.mjs <login-page-url> <out-dir>");
  process.exit(2);
}
const failures = [];
const notes = [];
const screenshots = [];
const fail = (msg) => failures.push(msg);
const axeTags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

const browser = await launch();
try {
  const page = await newPage(browser);
  await page.setViewport({ width: 1280, height: 900 });
  await page.setJavaScriptEnabled(false);
  const resp = await page.goto(loginURL, { waitUntil: "load" });
  if (resp.status() !== 200) fail(`sign-in page: status ${resp.status()}`);
  const users = await page.$$eval("li.user", (items) => items.map((li) => li.innerText.replace(/\s+/g, " ").trim()));
  if (users.length < 6) fail(`only ${users.length} test users listed`);
  for (const u of users) {
    if (!/NHS number \d{3} \d{3} \d{4}/.test(u)) fail(`a test user without a visible NHS number: ${u}`);
  }
  notes.push(`${users.length} test users, e.g. "${users[0]}"`);
  const file = path.join(out, "login.png");
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);

  await page.setViewport({ width: 320, height: 800 });
  await page.reload({ waitUntil: "load" });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 321) fail(`at 320 pixels the page is ${wide} pixels wide`);
  const narrow = path.join(out, "login-320.png");
  await page.screenshot({ path: narrow, fullPage: false });
  screenshots.push(narrow);
  await page.setViewport({ width: 1280, height: 900 });

  await page.setJavaScriptEnabled(true);
  await page.reload({ waitUntil: "load" });
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async (tags) => {
    const r = await globalThis.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  }, axeTags);
  for (const v of violations) fail(`sign-in page: axe ${v.id} (${v.impact}): ${v.help} at ${v.nodes.join(", ")}`);
  notes.push(`sign-in page: axe found ${violations.length} violations`);

  // Keyboard only, JavaScript off: Tab to the first test user's button and press Enter.
  await page.setJavaScriptEnabled(false);
  await page.reload({ waitUntil: "load" });
  let label = "";
  for (let i = 0; i < 20 && !label.startsWith("Sign in as"); i++) {
    await page.keyboard.press("Tab");
    label = await page.evaluate(() => (document.activeElement?.tagName === "BUTTON" ? document.activeElement.textContent.trim() : ""));
  }
  if (!label.startsWith("Sign in as")) {
    fail("no sign-in button reached by keyboard");
  } else {
    // The test serves the app's redirect URI itself, so the sign-in ends on a real page: what counts is
    // that the browser arrives there with a code. (An earlier version sent it to a port with nothing
    // listening and watched for the attempt, which Chromium did not always report: CI failed on it.)
    await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.keyboard.press("Enter")]);
    const back = page.url();
    const coded = /[?&]code=/.test(back);
    notes.push(`pressed "${label}"; the browser was sent to ${coded ? back.split("?")[0] + "?code=…" : back}`);
    if (!coded) fail(`signing in by keyboard did not come back to the app with a code: it ended at ${back}`);
  }
} catch (e) {
  fail(`the browser run stopped: ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ failures, notes, screenshots }, null, 1));
process.exit(failures.length > 0 ? 1 : 0);
