// Headless Chromium for the page tests, launched as this machine allows: /usr/bin/chromium (or
// $CHROMIUM), never a downloaded browser, and no background network traffic (the machine's
// network is closed).
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}
