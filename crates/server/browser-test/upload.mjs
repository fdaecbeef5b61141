// Opens the colorize web page in headless Chromium, uploads a photo, waits for the colourised
// image, saves a screenshot, then checks the error message for a file that is not an image.
// Usage: node upload.mjs URL PHOTO SCREENSHOT.png
// Prints one JSON line; exits non-zero on any failure. Never downloads a browser: it uses
// /usr/bin/chromium (or $CHROMIUM).
import { launch } from "./launch.mjs";

const [url, photo, shot] = process.argv.slice(2);
if (!url || !photo || !shot) {
  console.error("usage: node upload.mjs URL PHOTO SCREENSHOT.png");
  process.exit(2);
}

const browser = await launch();
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const external = [];
  const pageErrors = [];
  const origin = new URL(url).origin;
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("blob:") && !u.startsWith("data:")) external.push(u);
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  await page.goto(url, { waitUntil: "load" });
  await page.setInputFiles("#file", photo);
  // waitForSelector, not waitForFunction: the page's CSP forbids the eval that the latter uses.
  await page.waitForSelector('body[data-state="done"] #result-colorized[data-loaded="true"]', {
    state: "attached",
    timeout: 180000,
  });
  const result = await page.evaluate(() => ({
    width: document.getElementById("result-colorized").naturalWidth,
    height: document.getElementById("result-colorized").naturalHeight,
    originalWidth: document.getElementById("result-original").naturalWidth,
    session: document.querySelectorAll("#list li").length,
    status: document.getElementById("status-text").textContent,
    download: document.getElementById("download").getAttribute("href"),
  }));
  await page.screenshot({ path: shot, fullPage: true });

  // A phone-sized screen: nothing wider than the viewport.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

  // A file that is not an image: a clear message, no crash.
  await page.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a photo") });
  await page.waitForSelector("#status.error", { timeout: 60000 });
  const errorText = await page.textContent("#status-text");

  const out = { ok: true, ...result, overflow, errorText, external, pageErrors };
  if (external.length) failed = `external requests: ${external.join(", ")}`;
  else if (pageErrors.length) failed = `page errors: ${pageErrors.join("; ")}`;
  else if (result.session !== 1) failed = `expected 1 image in the session list, found ${result.session}`;
  else if (overflow > 1) failed = `the page is ${overflow}px wider than a phone screen`;
  else if (!/not a photo this server can read/.test(errorText)) failed = `unclear error message: ${errorText}`;
  if (failed) out.ok = false;
  console.log(JSON.stringify(out));
} catch (e) {
  failed = String(e);
  console.log(JSON.stringify({ ok: false, error: failed }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
