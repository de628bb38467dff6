// The uptake dashboard in a real browser: sign in as a commissioner through the real OpenID Connect flow
// with JavaScript off (the page must work without it), then check every page with axe-core, compare a
// figure on the page with the JSON answer, check reflow at 320 CSS pixels (400% zoom) and the keyboard's
// first stop, and save screenshots.
//
// usage: node dashboard.mjs <base-url> <period YYYY-MM> <practice ODS> <out-dir>
// Environment: CHROMIUM, the browser to drive (default /usr/bin/chromium).
// Prints one JSON object: {"failures": [...], "notes": [...], "screenshots": [...]}; exits 1 on any failure.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { launch, newPage } from "./browser.mjs";

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const [base, period, practice, out] = process.argv.slice(2);
if (!base || !period || !practice || !out) {
  console.error("usage: node dashboard.mjs <base-url> <period> <practice> <out-dir>");
  process.exit(2);
}

const failures = [];
const notes = [];
const screenshots = [];
const fail = (msg) => failures.push(msg);
// Each step's time goes into the notes, so that a slow store or a loaded machine shows where it was slow.
const started = Date.now();
const timed = (step) => notes.push(`${step} at ${((Date.now() - started) / 1000).toFixed(1)} s`);

// The WCAG 2.0, 2.1 and 2.2 A and AA rules, and axe's best practices (landmarks, heading order, one
// main, ...). Any violation fails.
const axeTags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

async function axe(page, name) {
  await page.setJavaScriptEnabled(true);
  await page.reload({ waitUntil: "load" });
  await page.evaluate(axeSource);
  const result = await page.evaluate(async (tags) => {
    const r = await globalThis.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  }, axeTags);
  for (const v of result) {
    fail(`${name}: axe ${v.id} (${v.impact}): ${v.help} at ${v.nodes.join(", ")}`);
  }
  notes.push(`${name}: axe found ${result.length} violations`);
}

async function shot(page, name, fullPage = true) {
  const file = path.join(out, name);
  await page.screenshot({ path: file, fullPage });
  screenshots.push(file);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.replace(/\s+/g, " ").trim());

const browser = await launch();
try {
  const page = await newPage(browser);
  await page.setViewport({ width: 1280, height: 900 });
  await page.setJavaScriptEnabled(false);

  // Not signed in: a page that says so and offers the sign-in.
  const home = `${base}/dashboard?period=${period}`;
  let resp = await page.goto(home, { waitUntil: "load" });
  if (resp.status() !== 401) fail(`signed out: status ${resp.status()}, want 401`);
  const signIn = await page.$("main a.button");
  if (!signIn) fail("signed out: no sign-in button");
  await axe(page, "sign-in page");
  await page.setJavaScriptEnabled(false);
  await page.goto(home, { waitUntil: "load" });

  // Sign in with JavaScript off: the dashboard's link, the identity provider's form, the redirects back.
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("main a.button")]);
  timed("the identity provider's sign-in form");
  if (!page.url().includes("/dev-idp/login")) fail(`sign-in went to ${page.url()}, not the identity provider`);
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("main form button[type=submit]")]);
  timed("signed in and back on the dashboard");
  if (!page.url().startsWith(`${base}/dashboard`)) fail(`after signing in the browser is at ${page.url()}`);
  const h1 = await text(page, "h1");
  if (!h1.startsWith("Online services uptake")) fail(`signed in, the heading is "${h1}"`);
  notes.push(`signed in without JavaScript; heading "${h1}"`);
  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === "gpfhir_dashboard");
  if (!session || !session.httpOnly || session.sameSite !== "Lax") fail(`session cookie ${JSON.stringify(session)} is not HttpOnly and SameSite=Lax`);

  // One figure on the page against the JSON answer, fetched with the same session.
  const answer = await fetch(`${base}/dashboard/uptake.json?period=${period}`, { headers: { Cookie: `gpfhir_dashboard=${session?.value}` } });
  if (answer.status !== 200) fail(`the JSON answer with the session cookie: status ${answer.status}`);
  const json = await answer.json();
  const headline = await page.$$eval(".summary__item", (items) =>
    Object.fromEntries(items.map((i) => [i.querySelector("dt").textContent.trim(), i.querySelector("dd").firstChild.textContent.trim()])));
  const users = headline["Patients using online services"];
  if (users !== String(json.totals.users)) fail(`page says ${users} patients using online services, JSON says ${json.totals.users}`);
  const row = await page.$$eval("#practices-caption ~ tbody tr, table tbody tr", (rows, code) => {
    const r = rows.find((x) => x.querySelector("th .code")?.textContent.trim() === code);
    return r ? [...r.querySelectorAll("td")].map((td) => td.textContent.trim()) : null;
  }, practice);
  const want = json.practices.find((p) => p.practice_code === practice);
  if (!row || !want) {
    fail(`practice ${practice} is not in the table or the JSON`);
  } else {
    const pct = want.uptake === null ? "–" : `${(want.uptake * 100).toFixed(1)}%`;
    if (row[3] !== pct) fail(`page shows ${practice}'s uptake as ${row[3]}, JSON ${pct}`);
    notes.push(`${practice}: uptake ${row[3]} on the page and in the JSON; ${users} patients using online services in all`);
  }
  await shot(page, "dashboard.png");
  await axe(page, "dashboard");

  // The keyboard's first stop is the skip link, and it shows when focused.
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => {
    const e = document.activeElement;
    const r = e.getBoundingClientRect();
    return { cls: e.className, visible: r.left >= 0 && r.top >= 0 && r.width > 0 };
  });
  if (first.cls !== "skip-link" || !first.visible) fail(`the first Tab stop is ${JSON.stringify(first)}, not a visible skip link`);

  // Reflow: at 320 CSS pixels wide (400% of 1280) nothing but the tables' own scroll areas scrolls sideways.
  await page.setViewport({ width: 320, height: 800 });
  await page.reload({ waitUntil: "load" });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 321) fail(`at 320 pixels the page is ${wide} pixels wide`);
  await shot(page, "dashboard-320.png", false);
  await page.setViewport({ width: 1280, height: 900 });

  // A practice's page with its trend, with JavaScript off and then checked.
  await page.setJavaScriptEnabled(false);
  resp = await page.goto(`${base}/dashboard?period=${period}&practice=${practice}`, { waitUntil: "load" });
  if (resp.status() !== 200) fail(`practice page: status ${resp.status()}`);
  if ((await page.$$("svg[role=img] title")).length === 0) fail("practice page: no chart with a title");
  await shot(page, "practice.png");
  await axe(page, "practice page");

  // A bad address gets a page that says what is wrong.
  await page.setJavaScriptEnabled(false);
  resp = await page.goto(`${base}/dashboard?period=2025-13`, { waitUntil: "load" });
  if (resp.status() !== 400) fail(`bad period: status ${resp.status()}`);
  await axe(page, "error page");
} catch (e) {
  fail(`the browser run stopped: ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ failures, notes, screenshots }, null, 1));
process.exit(failures.length > 0 ? 1 : 0);
