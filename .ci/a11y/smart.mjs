// A SMART on FHIR browser app, built on the fhirclient library, makes a standalone launch in Chromium:
// the app's page (served from its own origin) asks gpfhir's SMART discovery where to authorise, the
// browser signs in on the dev identity provider's page as the first test user, comes back with a code,
// the library exchanges it (PKCE) and reads the patient's record across origins.
//
// usage: node smart.mjs <app-launch-url> <out-dir>
// Environment: CHROMIUM, the browser to drive (default /usr/bin/chromium).
// Prints one JSON object: {"failures": [...], "notes": [...], "screenshots": [...], "result": {...}};
// exits 1 on any failure.

import path from "node:path";
import { launch, newPage } from "./browser.mjs";

const [launchURL, out] = process.argv.slice(2);
if (!launchURL || !out) {
  console.error("usage: node smart.mjs <app-launch-url> <out-dir>");
  process.exit(2);
}
const failures = [];
const notes = [];
const screenshots = [];
let result = null;
const fail = (msg) => failures.push(msg);

const browser = await launch();
try {
  const page = await newPage(browser);
  await page.setViewport({ width: 1024, height: 768 });
  page.on("console", (m) => notes.push(`console ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => notes.push(`page error: ${e}`));
  page.on("response", (r) => {
    if (r.status() >= 400) notes.push(`answer ${r.status()} to ${r.request().method()} ${r.url().split("?")[0]}`);
  });
  page.on("requestfailed", (r) => notes.push(`request failed: ${r.method()} ${r.url().split("?")[0]}: ${r.failure()?.errorText}`));

  // The app sends the browser to the authorization endpoint, which shows the sign-in page.
  await page.goto(launchURL, { waitUntil: "load" });
  await page.waitForSelector("li.user button[type=submit]");
  notes.push(`the app sent the browser to ${page.url().split("?")[0]}`);
  const who = await page.$eval("li.user p", (p) => p.textContent.replace(/\s+/g, " ").trim());
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("li.user button[type=submit]")]);
  notes.push(`signed in as "${who}"; back at ${page.url().split("?")[0]}`);

  // The app's callback page finishes the launch with the library and reads the record.
  await page.waitForFunction(() => document.title === "done" || document.title === "failed");
  const text = await page.$eval("#out", (e) => e.textContent);
  const title = await page.title();
  if (title !== "done") {
    fail(`the app failed: ${text}`);
  } else {
    result = JSON.parse(text);
    notes.push(`the app read: ${text}`);
  }
  const file = path.join(out, "smart-app.png");
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
} catch (e) {
  fail(`the browser run stopped: ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ failures, notes, screenshots, result }, null, 1));
process.exit(failures.length > 0 ? 1 : 0);
