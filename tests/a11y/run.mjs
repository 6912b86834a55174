// Accessibility tests of Sportello's pages, in a real browser.
//
// Starts `sportello serve --demo` on a free port with a temporary data dir, drives the
// system Chromium (headless, through playwright-core) over the citizen portal (Italian
// and English) and the back office (signed in as the demo operator), runs axe-core on
// every page with the WCAG 2.0/2.1 A and AA rules (back-office pages also at 360 px), fills in and sends the application
// form with the keyboard alone, and saves full-page screenshots. Prints every violation
// and exits non-zero when there is any, or when a keyboard check fails.
//
// Environment:
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   SPORTELLO_BIN     the server binary (default ${CARGO_TARGET_DIR:-target}/debug/sportello)
//   CARGO_TARGET_DIR  also where screenshots go: ${CARGO_TARGET_DIR:-target}/screenshots/

import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { AXE_TAGS, axeResults, axeSource, axeVersion, printViolation } from './lib/axe.mjs';
import { api, pdf, signIn } from './lib/office.mjs';
import { chromiumArgs, startServer } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target');
const serverBin = path.resolve(root, process.env.SPORTELLO_BIN || path.join(targetDir, 'debug', 'sportello'));
const browserBin = process.env.CHROMIUM || '/usr/bin/chromium';
const shotsDir = path.join(targetDir, 'screenshots');
/** With A11Y_VERBOSE=1, also what axe could not decide alone ("needs review"). */
const VERBOSE = process.env.A11Y_VERBOSE === '1';

/** Everything that went wrong, printed at the end; any entry makes the run fail. */
const failures = [];
let pagesChecked = 0;
/** The case the keyboard test made (the back-office pages audit a demo case instead). */
let keyboardCase = null;
/** A number to call the phone page with: one on a demo case page when there is one. */
let callNumber = '0000000001';
/** Menu pages of the back office that the operator could open. */
const operatorReached = new Set();
let checksPassed = 0;

function fail(what) {
  failures.push(what);
  console.log(`FAIL ${what}`);
}

function pass(what) {
  checksPassed += 1;
  console.log(`ok   ${what}`);
}

// ----- axe and screenshots -----

/** Attaches the listeners that record the Content-Security-Policy violations of a page. */
function watchCsp(page) {
  const seen = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) seen.push(msg.text());
  });
  page.on('pageerror', (err) => seen.push(`page error: ${err.message}`));
  page.cspViolations = seen;
  return page;
}

/** The narrow window every back-office page is audited in too (issue 18: 1280 and 360 px). */
const OFFICE_NARROW = 360;

/**
 * Runs axe-core on the page as it is now; prints and records every violation. A page of
 * the back office is audited again in a window 360 px wide.
 */
async function audit(page, name) {
  await auditOnce(page, name);
  const size = page.viewportSize();
  if (name.startsWith('office') && size && size.width > OFFICE_NARROW) {
    await page.setViewportSize({ width: OFFICE_NARROW, height: size.height });
    await auditOnce(page, `${name}@${OFFICE_NARROW}`);
    await page.setViewportSize(size);
  }
}

async function auditOnce(page, name) {
  pagesChecked += 1;
  const { violations, incomplete } = await axeResults(page);
  const url = page.url();
  const csp = page.cspViolations || [];
  if (VERBOSE) {
    for (const v of incomplete) {
      console.log(`     review ${name}: ${v.id} ${v.help}: ${v.nodes.map((n) => n.target).slice(0, 5).join(', ')}${v.nodes.length > 5 ? ' …' : ''}`);
    }
  }
  if (violations.length === 0 && csp.length === 0) {
    pass(`axe ${name} (${new URL(url).pathname}${new URL(url).search})`);
    return;
  }
  for (const v of violations) {
    fail(`axe ${name}: ${v.id} [${v.impact}] ${v.help} (${v.nodes.length} element${v.nodes.length === 1 ? '' : 's'})`);
    printViolation(v, url);
  }
  for (const c of csp) {
    fail(`csp ${name}: ${c}`);
    console.log(`       page: ${url}`);
  }
  csp.length = 0;
}

async function screenshot(page, name) {
  const file = path.join(shotsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Loads a page, checks it answered, audits it and saves its screenshot. */
async function visit(page, base, pathAndQuery, name, { shot = true, status = [200] } = {}) {
  const res = await page.goto(base + pathAndQuery, { waitUntil: 'load' });
  if (!res || !status.includes(res.status())) {
    fail(`${name}: GET ${pathAndQuery} answered ${res ? res.status() : 'nothing'}`);
  }
  await audit(page, name);
  if (shot) await screenshot(page, name);
}

// ----- keyboard -----

/** What the focused element is, with whether its focus can be seen. */
function describeFocus(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { tag: 'body' };
    const style = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
    const shadow = style.boxShadow && style.boxShadow !== 'none';
    const onScreen = rect.width > 0 && rect.height > 0 && rect.right > 0 && rect.bottom > 0
      && rect.left < document.documentElement.scrollWidth && rect.top < document.documentElement.scrollHeight;
    return {
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type') || '',
      id: el.id,
      name: el.getAttribute('name') || '',
      cls: el.className || '',
      text: (el.innerText || el.value || '').trim().slice(0, 40),
      visible: (outline || shadow) && onScreen,
      outline: `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`,
    };
  });
}

function label(f) {
  return `${f.tag}${f.id ? `#${f.id}` : ''}${f.type ? `[type=${f.type}]` : ''}${f.text ? ` "${f.text}"` : ''}`;
}

/**
 * Presses Tab (or Shift+Tab) until the focused element matches `want`, at most `max`
 * times; every stop on the way must show its focus. Returns the element reached.
 */
async function tabTo(page, want, what, { back = false, max = 40, stops = null } = {}) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const f = await describeFocus(page);
    if (stops) stops.push(f);
    if (f.tag !== 'body' && !f.visible) {
      fail(`keyboard: the focus on ${label(f)} cannot be seen (outline ${f.outline})`);
    }
    if (want(f)) return f;
  }
  throw new Error(`keyboard: ${what} not reached with ${max} presses of ${back ? 'Shift+Tab' : 'Tab'}`);
}

const byId = (id) => (f) => f.id === id;

/**
 * The application form with the keyboard alone: the skip link is the first tab stop and
 * shows its focus, then a whole application is filled in (category with Space, text by
 * typing, the documents on the focused file inputs, the privacy box with Space) and sent
 * with Enter; the answer must show the new case's number.
 */
async function keyboardApplication(browser, base) {
  const context = await newContext(browser, 'it');
  const page = watchCsp(await context.newPage());
  await page.goto(`${base}/domanda?lang=it`, { waitUntil: 'load' });

  await page.keyboard.press('Tab');
  const first = await describeFocus(page);
  if (first.tag === 'a' && String(first.cls).split(/\s+/).includes('skip')) {
    pass('keyboard: the skip link is the first tab stop');
  } else {
    fail(`keyboard: the first tab stop is ${label(first)}, not the skip link`);
  }
  const skipBox = await page.evaluate(() => {
    const r = document.activeElement.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height, vw: innerWidth, vh: innerHeight };
  });
  const skipInView = skipBox.x >= 0 && skipBox.y >= 0 && skipBox.w > 0 && skipBox.h > 0
    && skipBox.x + skipBox.w <= skipBox.vw && skipBox.y + skipBox.h <= skipBox.vh;
  if (first.visible && skipInView) {
    pass(`keyboard: the focused skip link is on screen with a visible focus ring (${first.outline})`);
  } else {
    fail(`keyboard: the focused skip link is not visible (box ${JSON.stringify(skipBox)}, outline ${first.outline})`);
  }
  await page.screenshot({ path: path.join(shotsDir, 'keyboard-skip-link.png') });

  await page.keyboard.press('Enter');
  const afterSkip = await describeFocus(page);
  if (afterSkip.id === 'main') pass('keyboard: Enter on the skip link moves the focus to the main content');
  else fail(`keyboard: after the skip link the focus is on ${label(afterSkip)}, not main#main`);

  const stops = [];
  // Category: the first radio of the group; Space selects it.
  const radio = await tabTo(page, (f) => f.tag === 'input' && f.type === 'radio', 'the category', { stops });
  await page.keyboard.press('Space');
  const chosen = await page.evaluate(() => {
    const r = document.activeElement;
    const lab = document.querySelector(`label[for="${r.id}"]`);
    return { checked: r.checked, value: r.value, label: lab ? lab.textContent : '' };
  });
  if (!chosen.checked) fail(`keyboard: Space did not select the category ${radio.id}`);

  // Holder.
  await tabTo(page, byId('name'), 'the name field', { stops });
  await page.keyboard.type('Maria Rossi');
  await tabTo(page, byId('fiscal_code'), 'the fiscal code field', { stops });
  await page.keyboard.type('RSSMRA80A01H501U');
  await tabTo(page, byId('email'), 'the e-mail field', { stops });
  await page.keyboard.type('maria.rossi@example.org');
  // Shift+Tab goes back to the previous field, Tab forward again.
  const backTo = await tabTo(page, byId('fiscal_code'), 'the fiscal code field, backwards', { back: true, max: 1, stops });
  if (backTo.id === 'fiscal_code') pass('keyboard: Shift+Tab goes back to the previous field');
  await tabTo(page, byId('email'), 'the e-mail field again', { max: 1, stops });
  await tabTo(page, byId('plates'), 'the plates field', { stops });
  await page.keyboard.type('AB123CD');

  // Documents: every file input of the chosen category, reached with Tab; the file is
  // set on the focused input (a native file chooser cannot be driven headless).
  const fileInputs = await page.evaluate(() => [...document.querySelectorAll('input[type=file]')].map((i) => {
    const lab = document.querySelector(`label[for="${i.id}"]`);
    return { id: i.id, label: lab ? lab.textContent.trim() : '' };
  }));
  const needed = fileInputs.filter((f) => f.label && chosen.label.includes(f.label));
  if (needed.length === 0) fail(`keyboard: no document input matches the category "${chosen.label.trim()}"`);
  for (const f of fileInputs) {
    await tabTo(page, byId(f.id), `the document input ${f.id}`, { max: 3, stops });
    if (needed.some((n) => n.id === f.id)) {
      await page.locator(':focus').setInputFiles({
        name: `${f.id.replace(/^doc_/, '')}.pdf`,
        mimeType: 'application/pdf',
        buffer: pdf(f.label),
      });
    }
  }

  await tabTo(page, byId('privacy'), 'the privacy box', { stops });
  await page.keyboard.press('Space');
  if (!(await page.evaluate(() => document.activeElement.checked))) {
    fail('keyboard: Space did not tick the privacy box');
  }
  await tabTo(page, (f) => f.tag === 'button' && f.type === 'submit', 'the submit button', { stops });
  await page.screenshot({ path: path.join(shotsDir, 'keyboard-apply-filled.png'), fullPage: true });
  const answer = page.waitForNavigation({ waitUntil: 'load' });
  await page.keyboard.press('Enter');
  await answer;

  const invisible = stops.filter((f) => f.tag !== 'body' && !f.visible);
  if (invisible.length === 0) {
    pass(`keyboard: all ${stops.length} tab stops on the way showed a visible focus`);
  }
  const notice = await page.evaluate(() => {
    const n = document.querySelector('.notice.success[role="status"]');
    return n ? n.innerText : null;
  });
  const reference = notice && notice.match(/\b[A-Z]{2,4}-\d{4}-\d{3,}\b/);
  if (reference) {
    keyboardCase = reference[0];
    pass(`keyboard: the application was sent with the keyboard alone; case ${reference[0]}`);
  } else {
    const errors = await page.evaluate(() => {
      const n = document.querySelector('.notice.error');
      return n ? n.innerText : document.querySelector('main')?.innerText.slice(0, 500);
    });
    fail(`keyboard: no case number after sending the application: ${errors}`);
  }
  await audit(page, 'portal-apply-done');
  await screenshot(page, 'portal-apply-done');
  await context.close();
}

// ----- the run -----

const LOCALES = { it: 'it-IT', en: 'en-GB' };

function newContext(browser, lang, viewport = { width: 1280, height: 900 }) {
  return browser.newContext({ viewport, locale: LOCALES[lang] });
}

/** The links of the page's main menu (the pages a person reaches from every page). */
function menuLinks(page) {
  return page.$$eval('header nav a[href^="/"]', (as) => as.map((a) => a.getAttribute('href')));
}

/**
 * The auditor itself: on a page of the application with faults added on purpose (an image
 * without text, an input without label, a link without name), axe must report them; a run
 * whose auditor found nothing because it never ran must not pass.
 */
async function auditorSelfTest(browser, base) {
  const context = await newContext(browser, 'it');
  const page = await context.newPage();
  await page.goto(`${base}/privacy`);
  await page.evaluate(() => {
    const main = document.querySelector('main');
    main.insertAdjacentHTML('beforeend', '<img src="/static/none.png"><input type="text"><a href="/"></a>');
  });
  await page.evaluate(axeSource);
  const ids = await page.evaluate(async (tags) => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return r.violations.map((v) => v.id);
  }, AXE_TAGS);
  const want = ['image-alt', 'label', 'link-name'];
  const missed = want.filter((id) => !ids.includes(id));
  if (missed.length === 0) pass(`axe finds faults planted on purpose (${want.join(', ')})`);
  else fail(`axe did not report the planted faults ${missed.join(', ')} (it reported: ${ids.join(', ') || 'nothing'})`);
  await context.close();
}

/**
 * Reflow (WCAG 1.4.10): at 320 CSS pixels wide nothing but a data table may need
 * horizontal scrolling, and tables scroll inside their own region, so the page itself
 * must not be wider than the window.
 */
async function reflow(page, name) {
  const { width, scroll, culprits } = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')].filter((el) => {
      const r = el.getBoundingClientRect();
      return r.right > w + 1 && !el.closest('.table-wrap') && getComputedStyle(el).position !== 'absolute';
    }).slice(0, 5).map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).split(' ').join('.')}` : ''}`);
    return { width: w, scroll: document.documentElement.scrollWidth, culprits: wide };
  });
  if (scroll <= width) pass(`reflow ${name}: fits ${width} px`);
  else fail(`reflow ${name}: the page is ${scroll} px wide in a ${width} px window (${culprits.join(', ')})`);
}

async function portal(browser, base) {
  for (const lang of ['it', 'en']) {
    const context = await newContext(browser, lang);
    const page = watchCsp(await context.newPage());
    const pages = [
      ['/', 'home'],
      ['/domanda', 'apply'],
      ['/stato', 'status'],
      ['/contesta', 'contest'],
      ['/accessibilita', 'accessibility'],
      ['/privacy', 'privacy'],
    ];
    for (const [p, name] of pages) {
      await visit(page, base, `${p}?lang=${lang}`, `portal-${name}-${lang}`);
      const htmlLang = await page.evaluate(() => document.documentElement.lang);
      if (htmlLang !== lang) fail(`portal-${name}-${lang}: <html lang="${htmlLang}">`);
    }
    // Any page of the menu not named above (pages added later are audited too).
    const known = new Set(pages.map(([p]) => p));
    for (const href of await menuLinks(page)) {
      const p = href.split('?')[0];
      if (known.has(p)) continue;
      known.add(p);
      await visit(page, base, `${p}?lang=${lang}`, `portal${p.replace(/\//g, '-')}-${lang}`);
    }

    // The status form with a wrong pair: the "not found" answer.
    await page.goto(`${base}/stato?lang=${lang}`);
    await page.fill('#reference', 'ZTL-2026-999999');
    await page.fill('#fiscal_code', 'RSSMRA80A01H501U');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    const alert = await page.locator('.notice.error[role="alert"]').count();
    if (alert !== 1) fail(`portal-status-not-found-${lang}: no error notice after a wrong pair`);
    await audit(page, `portal-status-not-found-${lang}`);
    await screenshot(page, `portal-status-not-found-${lang}`);

    // The application and the contest forms sent empty: the pages with their errors.
    await page.goto(`${base}/domanda?lang=${lang}`);
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    await audit(page, `portal-apply-errors-${lang}`);
    await screenshot(page, `portal-apply-errors-${lang}`);
    await page.goto(`${base}/contesta?lang=${lang}`);
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    await audit(page, `portal-contest-errors-${lang}`);
    await screenshot(page, `portal-contest-errors-${lang}`);
    const summaryFocused = await page.evaluate(() => document.activeElement?.classList.contains('error'));
    if (summaryFocused) pass(`portal-contest-errors-${lang}: the list of errors has the focus`);
    else fail(`portal-contest-errors-${lang}: the list of errors does not have the focus after sending`);
    await context.close();
  }

  // Narrow window (320 CSS px): reflow, and axe again on the narrow layout.
  const context = await newContext(browser, 'it', { width: 320, height: 800 });
  const page = watchCsp(await context.newPage());
  for (const [p, name] of [['/', 'home'], ['/domanda', 'apply'], ['/stato', 'status'], ['/contesta', 'contest']]) {
    await page.goto(`${base}${p}?lang=it`);
    await reflow(page, `portal-${name}-narrow`);
    await audit(page, `portal-${name}-narrow`);
    await screenshot(page, `portal-${name}-narrow`);
  }
  await context.close();
}

/**
 * The page a client over its budget of anonymous writes gets (429, issue 16 §2): empty
 * contest forms are sent until it comes. Runs last, as it uses up the address's budget.
 */
async function slowDown(browser, base) {
  for (const lang of ['it', 'en']) {
    const context = await newContext(browser, lang);
    const page = watchCsp(await context.newPage());
    let status = 0;
    for (let i = 0; i < 30 && status !== 429; i++) {
      await page.goto(`${base}/contesta?lang=${lang}`);
      const [res] = await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
      status = res ? res.status() : 0;
    }
    if (status === 429) {
      await audit(page, `portal-slow-down-${lang}`);
      await screenshot(page, `portal-slow-down-${lang}`);
    } else {
      fail(`portal-slow-down-${lang}: no 429 after 30 contest forms (last ${status})`);
    }
    await context.close();
  }
}

/** The back office, signed in as the operator, in Italian and in English. */
async function office(browser, base, operator) {
  const seen = { case: null, citizen: null };
  for (const lang of ['it', 'en']) {
    const context = await newContext(browser, lang);
    const page = watchCsp(await context.newPage());
    await visit(page, base, `/ufficio/login?lang=${lang}`, `office-login-${lang}`);
    // A wrong password: the page with its error.
    await page.fill('#login', operator.login);
    await page.fill('#password', 'not-the-password');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    await audit(page, `office-login-wrong-${lang}`);
    await signIn(page, base, operator, lang);
    pass(`office: signed in as the demo operator (${lang})`);

    await visit(page, base, '/ufficio', `office-home-${lang}`);
    await visit(page, base, '/ufficio/pratiche', `office-cases-${lang}`);
    const refs = await page.$$eval('main table tbody tr td:first-child a', (as) => as.map((a) => a.textContent.trim()));
    if (refs.length === 0) throw new Error('the case list of the demo office is empty');
    // A case of the demo office (not one this run made).
    const demo = refs.find((r) => r !== keyboardCase) || refs[0];
    await visit(page, base, `/ufficio/pratiche/${demo}`, `office-case-${lang}`);
    // The citizen's record (issue 18 §4), by the case page's link.
    const citizenHref = await page.$eval('a[href^="/ufficio/cittadini/"]', (a) => a.getAttribute('href')).catch(() => null);
    if (citizenHref) await visit(page, base, citizenHref, `office-citizen-${lang}`);
    else fail(`office-case-${lang}: no link to the citizen's record`);
    await visit(page, base, '/ufficio/cittadini/999999999', `office-citizen-not-found-${lang}`, { shot: false, status: [404] });
    await visit(page, base, `/ufficio/pratiche/${demo}/scrivi`, `office-write-${lang}`);
    // The preview of a template fills the form again.
    await page.selectOption('#write-template', 'acknowledgement');
    await Promise.all([page.waitForNavigation(), page.click('button[value=preview]')]);
    await audit(page, `office-write-preview-${lang}`);
    // A contested fine (SEG), whose page has the transits' table, when the list has one.
    await visit(page, base, '/ufficio/pratiche?q=SEG', `office-cases-filtered-${lang}`, { shot: false });
    const seg = await page.$$eval('main table tbody tr td:first-child a', (as) => as.map((a) => a.textContent.trim()));
    const segRef = seg.find((r) => r.startsWith('SEG'));
    if (segRef) await visit(page, base, `/ufficio/pratiche/${segRef}`, `office-case-seg-${lang}`);
    // Search with a word, from the search box of the header.
    await page.fill('#site-search', 'permesso');
    await Promise.all([page.waitForNavigation(), page.press('#site-search', 'Enter')]);
    await audit(page, `office-search-${lang}`);
    await screenshot(page, `office-search-${lang}`);
    // The permits page, then a plate check through its form.
    await visit(page, base, '/ufficio/permessi', `office-permits-${lang}`, { shot: false });
    await page.fill('#plate', 'AB123CD');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    if ((await page.locator('main .notice').count()) === 0) {
      fail(`office-permits-check-${lang}: no answer to the plate check`);
    }
    await audit(page, `office-permits-check-${lang}`);
    await screenshot(page, `office-permits-check-${lang}`);
    await visit(page, base, '/ufficio/pratiche/XYZ-0000-000000', `office-case-not-found-${lang}`, { shot: false, status: [404] });
    // The phone at hand (issue 18 §5): a caller the demo knows (a number on a demo case
    // page), a number nobody has, and one that is not a number (422).
    await page.goto(`${base}/ufficio/pratiche/${demo}`);
    const phones = await page.locator('main dt:text-is("Telefono") + dd, main dt:text-is("Telephone") + dd').allInnerTexts();
    callNumber = phones.map((t) => t.trim()).find((t) => /[0-9]{6}/.test(t.replace(/[^0-9]/g, ''))) || callNumber;
    await visit(page, base, `/ufficio/chiamata?numero=${encodeURIComponent(callNumber)}`, `office-call-${lang}`);
    await visit(page, base, '/ufficio/chiamata?numero=0000000001', `office-call-unknown-${lang}`, { shot: false });
    await visit(page, base, '/ufficio/chiamata?numero=abc', `office-call-bad-${lang}`, { shot: false, status: [422] });
    // Users and passwords (issue #16): the operator may not manage users (403 page) but
    // changes their own password.
    await visit(page, base, '/ufficio/utenti', `office-users-refused-${lang}`, { shot: false, status: [403] });
    await visit(page, base, '/ufficio/password', `office-password-${lang}`, { shot: false });
    await visit(page, base, '/ufficio/secondo-fattore', `office-second-factor-${lang}`, { shot: false });
    // Any other page of the menu (pages added later are audited too); a page the
    // operator may not see still has to be accessible.
    const known = new Set(['/ufficio', '/ufficio/pratiche', '/ufficio/permessi']);
    for (const href of await menuLinks(page)) {
      const p = href.split('?')[0];
      if (known.has(p)) continue;
      known.add(p);
      await visit(page, base, p, `office${p.replace(/^\/ufficio/, '').replace(/\//g, '-')}-${lang}`, { status: [200, 403] });
      if (new URL(page.url()).pathname === p) operatorReached.add(p);
    }

    if (lang === 'it') {
      // Narrow window: reflow of the back office (tables scroll in their own region).
      await page.setViewportSize({ width: 320, height: 800 });
      for (const [p, name] of [['/ufficio', 'home'], ['/ufficio/pratiche', 'cases'], [`/ufficio/pratiche/${segRef || demo}`, 'case'], ...(citizenHref ? [[citizenHref, 'citizen']] : []), [`/ufficio/chiamata?numero=${encodeURIComponent(callNumber)}`, 'call']]) {
        await page.goto(base + p);
        await reflow(page, `office-${name}-narrow`);
        await audit(page, `office-${name}-narrow`);
        await screenshot(page, `office-${name}-narrow`);
      }
      await page.setViewportSize({ width: 1280, height: 900 });
      // A case with the citizen's fiscal code, for a correct lookup on the portal.
      for (const ref of refs.slice(0, 25)) {
        if (seen.case) break;
        if (ref === keyboardCase) continue;
        await page.goto(`${base}/ufficio/pratiche/${ref}`);
        const code = await page.evaluate(() => {
          for (const dd of document.querySelectorAll('dl.facts dd')) {
            const t = dd.textContent.trim();
            if (/^[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]$/i.test(t)) return t;
          }
          return null;
        });
        if (code) {
          seen.case = ref;
          seen.citizen = code;
        }
      }
    }
    await context.close();
  }
  return seen;
}

/**
 * A permit's page (the demo has cases but no printed permits): a permit is issued through
 * the API, then its page is audited in both languages, with a refused change (the error
 * notice) and the CUDE temporary-plate form of a person-bound permit.
 */
async function permitPages(browser, base, operator) {
  const issue = async (caseType, category, plate, documents) => {
    const created = await api(base, operator, 'POST', '/api/v1/cases', {
      case_type: caseType,
      subject: `Permesso ${category} ${plate}`,
      channel: 'counter',
      citizen: { fiscal_code: 'RSSMRA80A01H501U', name: 'Mario Rossi' },
      fields: { category, plates: [plate], documents },
    });
    for (const action of ['start_review', 'approve', 'issue']) {
      await api(base, operator, 'POST', `/api/v1/cases/${created.reference}/actions`, { action });
    }
    // The printed permit is attached to the case as permesso-NUMBER.pdf.
    const issued = await api(base, operator, 'GET', `/api/v1/cases/${created.reference}`);
    const printed = issued.documents.map((d) => /^permesso-(.+)\.pdf$/.exec(d.filename)).find(Boolean);
    if (!printed) throw new Error(`no printed permit on ${created.reference}`);
    return printed[1];
  };
  const residents = await issue('ztl_permit', 'residenti', 'ZA111AA', ['documento_identita', 'carta_circolazione']);
  const cude = await issue('cude', 'cude', 'ZB222BB', ['contrassegno_cude', 'documento_identita']);
  for (const lang of ['it', 'en']) {
    const context = await newContext(browser, lang);
    const page = await context.newPage();
    watchCsp(page);
    await signIn(page, base, operator, lang);
    await visit(page, base, `/ufficio/permessi/${residents}`, `office-permit-${lang}`);
    await visit(page, base, `/ufficio/permessi/${cude}`, `office-permit-cude-${lang}`, { shot: lang === 'it' });
    // A temporary plate that ends before it starts is refused: the page says why, in the
    // page's language, and stays accessible.
    const form = page.locator('form:has(input[name=change][value=temporary_plate])');
    if ((await form.count()) === 0) {
      fail(`office-permit-cude-${lang}: no temporary-plate form`);
    } else {
      await page.locator('details:has(input[value=temporary_plate]) summary').click();
      const local = (hours) => {
        const d = new Date(Date.now() + hours * 3600 * 1000);
        const pad = (n) => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
      };
      await form.locator('#temporary-plate').fill('ZC333CC');
      await form.locator('#temporary-from').fill(local(3));
      await form.locator('#temporary-to').fill(local(2));
      await Promise.all([page.waitForNavigation(), form.locator('button[type=submit]').click()]);
      const said = (await page.locator('main .notice.error').textContent()) || '';
      const expected = lang === 'it' ? "La fine deve venire dopo l'inizio" : 'The end must come after the start';
      if (said.includes(expected)) pass(`office-permit-refused-${lang}: "${said.trim()}"`);
      else fail(`office-permit-refused-${lang}: the refusal says "${said.trim()}"`);
      await audit(page, `office-permit-refused-${lang}`);
    }
    await context.close();
  }
}

/**
 * Menu pages of the back office that the operator may not open (they land elsewhere),
 * audited as the supervisor.
 */
async function supervisorPages(browser, base, supervisor) {
  const context = await newContext(browser, 'it');
  const page = watchCsp(await context.newPage());
  await signIn(page, base, supervisor, 'it');
  const known = new Set(['/ufficio', '/ufficio/pratiche', '/ufficio/permessi']);
  for (const href of await menuLinks(page)) {
    const p = href.split('?')[0];
    if (known.has(p) || operatorReached.has(p)) continue;
    await visit(page, base, p, `office${p.replace(/^\/ufficio/, '').replace(/\//g, '-')}-supervisor`);
  }
  await context.close();
}

/** A correct lookup on /stato: the page shows the case to the citizen. */
async function statusFound(browser, base, found) {
  if (!found.case) {
    fail('portal-status-found: no demo case with a fiscal code on the first page of the list');
    return;
  }
  for (const lang of ['it', 'en']) {
    const context = await newContext(browser, lang);
    const page = watchCsp(await context.newPage());
    await page.goto(`${base}/stato?lang=${lang}`);
    await page.fill('#reference', found.case);
    await page.fill('#fiscal_code', found.citizen);
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    if ((await page.locator('#case-title').count()) !== 1) {
      fail(`portal-status-found-${lang}: the case ${found.case} was not shown`);
    }
    await audit(page, `portal-status-found-${lang}`);
    await screenshot(page, `portal-status-found-${lang}`);
    await context.close();
  }
}

async function main() {
  await mkdir(shotsDir, { recursive: true });
  // Only this run's pictures: the previous run's go.
  for (const f of await readdir(shotsDir)) {
    if (f.endsWith('.png')) await rm(path.join(shotsDir, f), { force: true });
  }
  console.log(`server:   ${serverBin}`);
  console.log(`browser:  ${browserBin}`);
  const server = await startServer(serverBin, root);
  console.log(`serving:  ${server.base}`);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: browserBin,
      headless: true,
      args: chromiumArgs(),
    });
    console.log(`chromium: ${browser.version()}`);
    console.log(`axe-core: ${axeVersion}, tags ${AXE_TAGS.join(', ')}`);
    await auditorSelfTest(browser, server.base);
    await portal(browser, server.base);
    await keyboardApplication(browser, server.base);
    const found = await office(browser, server.base, server.logins.operator);
    await permitPages(browser, server.base, server.logins.operator);
    await statusFound(browser, server.base, found);
    await supervisorPages(browser, server.base, server.logins.supervisor);
    await slowDown(browser, server.base);
  } catch (e) {
    fail(`the run stopped: ${e.stack || e}`);
  } finally {
    if (browser) await browser.close();
    await server.stop();
  }
  console.log('');
  console.log(`${pagesChecked} pages checked with axe-core; screenshots in ${shotsDir}`);
  console.log(`a11y: ${checksPassed} passed, ${failures.length} failed`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

await main();
