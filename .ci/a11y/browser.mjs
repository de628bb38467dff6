// The one way the browser checks start Chromium, so that all of them get the same flags and waits.
import puppeteer from "puppeteer-core";

// The network here is closed: without the background-networking flags Chromium opens (and has refused)
// connections of its own to Google's hosts at every start, which on a loaded CI machine delayed the
// pages under test. The waits are long because CI runs these beside the rest of the tests on two cores,
// where one navigation through the identity provider on the embedded FerretDB once took over 30 s; the
// Go test around each check bounds the whole run.
export const navigationTimeout = 90_000;

export async function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    protocolTimeout: 2 * navigationTimeout,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

export async function newPage(browser) {
  const page = await browser.newPage();
  page.setDefaultNavigationTimeout(navigationTimeout);
  page.setDefaultTimeout(navigationTimeout);
  return page;
}
