// Loads one of Klaxon's pages in headless Chromium and prints, as one JSON
// object on stdout, what tests/status_page.rs asserts on:
//   - `dom`: what the rendered page shows (the overall state, each
//     component's name, state and badge text, each listed incident's text,
//     each chart's figure ids), read from the live DOM;
//   - `source`: the page's HTML as served, and `text`: its visible text;
//   - `axe`: axe-core's violations (WCAG 2.0/2.1/2.2 A and AA rules);
//   - `phone`: the page's width against a 390 px wide viewport;
//   - `screenshot`: where the full-page PNG was saved.
//
// node check.mjs URL SCREENSHOT.png [Header: value …]
// The browser is CHROMIUM (Debian's /usr/bin/chromium by default).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const [url, screenshot, ...headerArgs] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node check.mjs URL SCREENSHOT.png [Header: value …]");
  process.exit(2);
}
const headers = Object.fromEntries(
  headerArgs.map((h) => {
    const i = h.indexOf(":");
    return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
  }),
);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // The machine's network is closed: no background fetches, no sandbox as root.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({
    viewport: { width: 1100, height: 900 },
    extraHTTPHeaders: headers,
    javaScriptEnabled: true,
    // The pages forbid every script (Content-Security-Policy); axe-core is
    // injected by the test, so the policy is set aside for it alone.
    bypassCSP: true,
  });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const response = await page.goto(url, { waitUntil: "load" });
  const source = await response.text();
  const dom = await page.evaluate(() => {
    const text = (el) => (el ? el.textContent.replace(/\s+/g, " ").trim() : null);
    return {
      title: document.title,
      lang: document.documentElement.lang,
      overall: document.querySelector("[data-overall]")?.dataset.overall ?? null,
      banner: text(document.querySelector("[data-overall]")),
      components: [...document.querySelectorAll("[data-component]")].map((li) => ({
        name: li.dataset.component,
        status: li.dataset.status,
        badge: text(li.querySelector(".badge")),
        bars: li.querySelectorAll("svg.bars rect").length,
        barsLabel: li.querySelector("svg.bars")?.getAttribute("aria-label") ?? null,
      })),
      incidents: [...document.querySelectorAll("[data-incident]")].map((a) => ({
        id: a.dataset.incident,
        text: text(a),
      })),
      figures: [...document.querySelectorAll("figure")].map((f) => ({
        id: f.id,
        svgs: f.querySelectorAll("svg").length,
        tables: f.querySelectorAll("table").length,
      })),
      landmarks: [...document.querySelectorAll("main, header, footer, nav")].map((e) => e.tagName.toLowerCase()),
      scripts: document.querySelectorAll("script").length,
    };
  });
  const text = await page.evaluate(() => document.body.innerText);
  await page.addScriptTag({ content: axeSource });
  const axe = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  // A phone: nothing may stick out sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  const phone = await page.evaluate(() => ({
    width: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
  }));
  const elsewhere = requests.filter((r) => !r.startsWith(new URL(url).origin));
  console.log(JSON.stringify({ status: response.status(), dom, source, text, axe, phone, elsewhere, screenshot }));
} finally {
  await browser.close();
}
