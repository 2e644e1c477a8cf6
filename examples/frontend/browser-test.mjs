// Drives the demo page in headless Chromium: log in, start a renewals sync,
// and let the page poll until the job completes while access tokens expire.
// Prints the page's counters as JSON and saves a screenshot.
//
//   node browser-test.mjs <page-url> <screenshot.png>
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node browser-test.mjs <page-url> <screenshot.png>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const statuses = [];
  page.on("response", (res) => statuses.push(res.status()));
  await page.goto(url);
  await page.click("#login");
  await page.waitForFunction(() => !document.getElementById("sync").disabled, null, { timeout: 10000 });
  await page.click("#sync");
  await page.waitForFunction(() => window.tokengateDemo.done || window.tokengateDemo.error, null, { timeout: 60000 });
  const result = await page.evaluate(() => ({
    done: window.tokengateDemo.done,
    error: window.tokengateDemo.error,
    stats: window.tokengateDemo.api.stats,
    status: document.getElementById("status").textContent,
  }));
  result.http401 = statuses.filter((s) => s === 401).length;
  result.responses = statuses.length;
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
