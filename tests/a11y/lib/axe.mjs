// axe-core run in a page, shared by run.mjs and tasks.mjs.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The axe-core source, evaluated in each page (its CSP blocks an injected <script>). */
export const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
/** axe-core's version, for the run's header. */
export const axeVersion = require('axe-core/package.json').version;
/** WCAG 2.0/2.1 A and AA, plus any tags named in A11Y_EXTRA_TAGS. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']
  .concat((process.env.A11Y_EXTRA_TAGS || '').split(',').map((t) => t.trim()).filter(Boolean));

/**
 * Runs axe-core on the page as it is now: `{ violations, incomplete }`, each rule with
 * its id, impact, help, link and the elements it names.
 */
export async function axeResults(page) {
  // The page's CSP (default-src 'self') blocks an injected <script>; evaluating the
  // source through the DevTools protocol is not subject to it.
  const hasAxe = await page.evaluate(() => typeof window.axe === 'object');
  if (!hasAxe) await page.evaluate(axeSource);
  return page.evaluate(async (tags) => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
      resultTypes: ['violations', 'incomplete'],
    });
    const shape = (v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.map((t) => (Array.isArray(t) ? t.join(' >>> ') : t)).join(' '),
        summary: (n.failureSummary || '').split('\n').slice(1).map((s) => s.trim()).filter(Boolean).join('; '),
      })),
    });
    return { violations: result.violations.map(shape), incomplete: result.incomplete.map(shape) };
  }, AXE_TAGS);
}

/** Prints one violation of a page, with up to ten of the elements it names. */
export function printViolation(v, url) {
  console.log(`       page: ${url}`);
  console.log(`       rule: ${v.helpUrl}`);
  for (const n of v.nodes.slice(0, 10)) {
    console.log(`       - ${n.target}${n.summary ? `  — ${n.summary}` : ''}`);
  }
  if (v.nodes.length > 10) console.log(`       … and ${v.nodes.length - 10} more`);
}
