// Opens the colorize web page in headless Chromium with a model that takes colour hints (model
// "sig"), uploads a photo, clicks on the result to paint a hint, and checks that the page sent a
// second request whose colourised image differs from the first; the hint tools stay hidden for
// the bundled model, which takes none.
// Usage: node hints.mjs URL PHOTO
// Prints one JSON line; exits non-zero on any failure. Uses /usr/bin/chromium (or $CHROMIUM).
import { launch } from "./launch.mjs";

const [url, photo] = process.argv.slice(2);
if (!url || !photo) {
  console.error("usage: node hints.mjs URL PHOTO");
  process.exit(2);
}
const browser = await launch();
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  const results = [];
  page.on("response", async (r) => {
    if (r.url().endsWith("/api/colorize") && r.status() === 201) results.push(await r.json());
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#model option[value=sig]", { state: "attached" });
  const hiddenForDefault = await page.isHidden("#hint-tools");
  await page.selectOption("#model", "sig");
  const shownForSig = await page.isVisible("#hint-tools");
  await page.setInputFiles("#file", photo);
  const done = 'body[data-state="done"] #result-colorized[data-loaded="true"]';
  await page.waitForSelector(done, { state: "attached", timeout: 120000 });
  await page.fill("#hint-color", "#2060e0");
  await page.click("#compare", { position: { x: 300, y: 200 } });
  // Wait for the second answer (waitForSelector: the page's CSP forbids waitForFunction's eval).
  for (let i = 0; i < 600 && results.length < 2; i++) await page.waitForTimeout(100);
  await page.waitForSelector(done, { state: "attached", timeout: 120000 });
  const count = await page.textContent("#hint-count");
  let differ = false;
  if (results.length === 2) {
    const a = await page.request.get(new URL(results[0].colorized_url, url).href);
    const b = await page.request.get(new URL(results[1].colorized_url, url).href);
    differ = Buffer.compare(await a.body(), await b.body()) !== 0;
  }
  const out = { ok: true, hiddenForDefault, shownForSig, answers: results.length, count, differ, pageErrors };
  if (!hiddenForDefault) failed = "hint tools shown for a model without hints";
  else if (!shownForSig) failed = "hint tools hidden for a model with hints";
  else if (results.length !== 2) failed = `expected 2 answers, got ${results.length}`;
  else if (!/^1 hint\b/.test(count)) failed = `hint count reads "${count}"`;
  else if (!differ) failed = "the hinted result is the same image as the first";
  else if (pageErrors.length) failed = `page errors: ${pageErrors.join("; ")}`;
  if (failed) out.ok = false;
  console.log(JSON.stringify(out));
} catch (e) {
  failed = String(e);
  console.log(JSON.stringify({ ok: false, error: failed }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
