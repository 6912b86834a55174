// The clerk's day (issue 18, "Measure it"): five tasks of a back-office operator played in
// headless Chromium on the demo office, each counting what the operator does.
//
// Starts `sportello serve --demo` (lib/server.mjs), signs in as the demo operator and plays:
//   a. orphans  — triage the orphan queue: open the orphan card, the first orphan that can be
//                 assigned, assign it;
//   b. permit   — a permit request received by e-mail: start the review, record category,
//                 plates and documents, approve, issue; open the permit's page;
//   c. document — ask for a missing document, receive it (uploaded on the case page),
//                 integration received: the clock runs again;
//   d. call     — a known citizen calls: the call page, their case, the call logged;
//   e. annul    — a contested fine whose evidence shows a transit authorised by a CUDE
//                 permit: annulled with reasons.
// The operator's moves go only through click() / type() / choose() / upload() / back() of a
// Clerk, which count them; a typed value holding an id (a snake_case token, a login, a case
// reference or a permit number) is counted as a typed id. Navigating to the page a task
// starts from (the home page, a case page, the call page a PBX opens) is not counted.
// Every page a task reaches is audited with axe-core (WCAG 2.0/2.1 A+AA) at 1280 and at 360
// CSS px; every outcome is checked (in the page, and through the API). Prints
// `task NAME: N clicks, M typed fields, K typed ids` per task and writes them to
// ${CARGO_TARGET_DIR:-target}/screenshots/tasks/tasks.json with the screenshots of the key
// steps. Exits non-zero when a task fails or a page has a violation.
//
// Environment: CHROMIUM, SPORTELLO_BIN, CARGO_TARGET_DIR (as run.mjs); TASKS=a,c to play
// only some tasks.

import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { AXE_TAGS, axeResults, axeVersion, printViolation } from './lib/axe.mjs';
import { api, pdf, signIn } from './lib/office.mjs';
import { chromiumArgs, startServer } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target');
const serverBin = path.resolve(root, process.env.SPORTELLO_BIN || path.join(targetDir, 'debug', 'sportello'));
const browserBin = process.env.CHROMIUM || '/usr/bin/chromium';
const shotsDir = path.join(targetDir, 'screenshots', 'tasks');
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 360, height: 800 };
const ONLY = (process.env.TASKS || '').split(',').map((t) => t.trim()).filter(Boolean);

const failures = [];
function fail(what) {
  failures.push(what);
  console.log(`FAIL ${what}`);
}

/** Throws with `what` unless `ok`: a task whose result is not there fails. */
function check(ok, what) {
  if (!ok) throw new Error(`not done: ${what}`);
}

// ----- ids typed by hand -----

/** The demo office's logins (a login typed by hand is an id). */
const LOGINS = ['operatore', 'supervisore', 'l.neri', 's.gallo'];
const ID_PATTERNS = [
  ['snake_case token', /\b[a-z]+(?:_[a-z0-9]+)+\b/],
  ['case reference', /\b[A-Z]{3}-\d{4}-\d{6}\b/],
  ['permit number', /\b[A-Z]{2,4}\d{9}\b/],
  ['login', new RegExp(`(^|[\\s,;])(${LOGINS.map((l) => l.replace('.', '\\.')).join('|')})($|[\\s,;])`)],
];

/** The kinds of id `text` holds (empty when it holds none). */
export function idsIn(text) {
  return ID_PATTERNS.filter(([, re]) => re.test(text)).map(([kind]) => kind);
}

// ----- the pages, as the tasks find their way -----

/**
 * What the tasks look for on the back office's pages, in one place: when a page changes,
 * this is what to check (see docs/CLERKS-DAY.md, "After"). A workflow action is found by
 * its form (`input[name=action][value=NAME]`), a field by its `name`.
 */
const UI = {
  /** The home page's queue card of the orphans. */
  orphanCard: 'main a.queue[href*="orphan=true"]',
  /** The case list: header cells and rows; statuses in which a case may be assigned. */
  listHeaders: 'main table thead th',
  listRows: 'main table tbody tr',
  assignableStatus: /^\s*(ricevuta|in istruttoria)\s*$/i,
  /** "Prendi" on a row of the list: the case to oneself in one click. */
  takeButton: 'button[name=take]',
  /** A one-click assignment to oneself (issue 18 §1), when the case page has one. */
  assignToMe: /assegna a me/i,
  /** The notice after an action done. */
  doneNotice: 'main .notice:not(.error)',
  /** The case page's form of the permit data (fields category, plates, documents). */
  permitForm: 'main form[action$="/dati"]',
  /** The case page's upload form. */
  uploadField: 'main form[action$="/documenti"] input[type=file]',
  uploadSubmit: 'main form[action$="/documenti"] button[type=submit]',
  /** The menu's permits page, its form opening a permit by number. */
  permitsMenu: 'header nav a[href="/ufficio/permessi"]',
  permitNumber: 'main form[action="/ufficio/permessi/apri"] [name=numero]',
  permitOpen: 'main form[action="/ufficio/permessi/apri"] button[type=submit]',
  /** A form logging a call (a `note` field) on the call page, when it has one (it names
   * the case in its action or in a field's value). */
  callLogForm: 'main form[method=post]:has([name=note])',
  /** The call-backs page's entry of a case, its note and "reached" button. */
  callbackNote: 'textarea[name=note]',
  callbackReached: 'button[value=reached]',
};

// ----- the operator -----

/**
 * The operator at work in one task: every click, choice and typed field goes through
 * here and is counted; every page reached is audited at both widths.
 */
class Clerk {
  constructor(page, base, task) {
    this.page = page;
    this.base = base;
    this.task = task;
    this.clicks = 0;
    this.typed = 0;
    this.typedIds = 0;
    this.idsSeen = [];
    this.pages = 0;
    this.shots = 0;
  }

  /** Where the task starts (not counted: the operator is already there). */
  async start(pathAndQuery) {
    const res = await this.page.goto(this.base + pathAndQuery, { waitUntil: 'load' });
    check(res && res.ok(), `GET ${pathAndQuery} answered ${res ? res.status() : 'nothing'}`);
    await this.arrived();
  }

  /** One click; `nav` when it loads another page (a link, a submit button). */
  async click(locator, { nav = true } = {}) {
    this.clicks += 1;
    const el = locator.first();
    if (!nav) {
      await el.click();
      return;
    }
    const [res] = await Promise.all([this.page.waitForNavigation({ waitUntil: 'load' }), el.click()]);
    check(!res || res.status() < 400, `${this.page.url()} answered ${res && res.status()}`);
    await this.arrived();
  }

  /** One typed field. */
  async type(locator, text) {
    this.typed += 1;
    const kinds = idsIn(text);
    if (kinds.length > 0) {
      this.typedIds += 1;
      this.idsSeen.push(`${JSON.stringify(text)} (${kinds.join(', ')})`);
    }
    await locator.first().fill(text);
  }

  /** One choice from a list (a click). */
  async choose(locator, value) {
    this.clicks += 1;
    await locator.first().selectOption(value);
  }

  /** One file chosen for an upload field (a click). */
  async upload(locator, file) {
    this.clicks += 1;
    await locator.first().setInputFiles(file);
  }

  /** The browser's Back (a click). */
  async back() {
    this.clicks += 1;
    await this.page.goBack({ waitUntil: 'load' });
    await this.arrived();
  }

  /** A page reached: no error shown, axe-clean at 1280 and at 360 px. */
  async arrived() {
    this.pages += 1;
    const where = new URL(this.page.url());
    const name = `task ${this.task} page ${this.pages} (${where.pathname}${where.search})`;
    for (const size of [WIDE, NARROW]) {
      await this.page.setViewportSize(size);
      const { violations } = await axeResults(this.page);
      for (const v of violations) {
        fail(`axe ${name} at ${size.width} px: ${v.id} [${v.impact}] ${v.help} (${v.nodes.length} element${v.nodes.length === 1 ? '' : 's'})`);
        printViolation(v, this.page.url());
      }
    }
    await this.page.setViewportSize(WIDE);
  }

  /** A screenshot of a key step (full page, 1280 px). */
  async shot(label) {
    this.shots += 1;
    const file = path.join(shotsDir, `${this.task}-${String(this.shots).padStart(2, '0')}-${label}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
  }

  /** An error notice on the page, as a failure. */
  async noError(what) {
    const errors = await this.page.locator('main .notice.error').allInnerTexts();
    check(errors.length === 0, `${what}: the page says ${JSON.stringify(errors.join(' / '))}`);
  }

  /**
   * A workflow action of the case page: opens its panel when it has one, fills its
   * fields (selector -> text) and presses its button.
   */
  /** Whether the case page offers the action `name` now. */
  async offers(name) {
    return (await this.page.locator(`main form:has(input[name="action"][value="${name}"])`).count()) > 0;
  }

  /** Starts the review by hand only when the page does not offer `next` yet (before,
   * a case just received offered nothing else). */
  async reviewFor(next) {
    if (!(await this.offers(next))) await this.act('start_review');
  }

  async act(name, fields = {}) {
    const { page } = this;
    const form = page.locator(`main form:has(input[name="action"][value="${name}"])`);
    check((await form.count()) > 0, `the case page offers no "${name}"`);
    const panel = page.locator(`main details:has(input[name="action"][value="${name}"])`);
    if ((await panel.count()) > 0 && !(await panel.first().evaluate((d) => d.open))) {
      await this.click(panel.first().locator('summary'), { nav: false });
    }
    for (const [selector, value] of Object.entries(fields)) {
      await this.enter(form.first().locator(selector), value);
    }
    await this.click(form.first().locator('button[type=submit]'));
    await this.noError(`action ${name}`);
  }

  /**
   * Gives a field its value the way the field asks: a list is chosen from, check boxes
   * are ticked (those not ticked yet whose value is among `value`'s comma-separated
   * items), a text field is typed in. Nothing is counted when the field already holds it.
   */
  async enter(field, value) {
    const kind = await field.first().evaluate((e) => (e.tagName === 'INPUT' ? e.type : e.tagName.toLowerCase()));
    if (kind === 'select') {
      if ((await field.first().inputValue()) !== value) await this.choose(field, value);
      return;
    }
    if (kind === 'checkbox' || kind === 'radio') {
      for (const item of value.split(',').map((v) => v.trim()).filter(Boolean)) {
        const box = field.and(this.page.locator(`[value="${item}"]`));
        check((await box.count()) > 0, `a box for "${item}"`);
        if (!(await box.first().isChecked())) await this.click(box, { nav: false });
      }
      return;
    }
    const norm = (t) => t.replace(/[\s,;]+/g, ' ').trim().toUpperCase();
    if (norm(await field.first().inputValue()) !== norm(value)) await this.type(field, value);
  }

  /** The counts, as printed and recorded. */
  result() {
    return { clicks: this.clicks, typed: this.typed, typed_ids: this.typedIds, ids: this.idsSeen, pages: this.pages };
  }
}

// ----- the API, to find the demo's cases and check outcomes -----

async function listCases(base, who, query) {
  const all = [];
  for (let page = 1; ; page++) {
    const got = await api(base, who, 'GET', `/api/v1/cases?${query}&per_page=100&page=${page}`);
    all.push(...got.items);
    if (got.items.length === 0 || all.length >= got.total) return all;
  }
}

/** What the demo's permit requests ask for, by subject (crates/sportello/src/demo/story.rs). */
const CATEGORY_OF_SUBJECT = {
  'Permesso ZTL residenti': 'residenti',
  'Rinnovo permesso residenti': 'residenti',
  'Permesso carico e scarico': 'carico_scarico',
  'Permesso medico in visita domiciliare': 'medici',
  'Permesso dimoranti': 'dimoranti',
  'Sostituzione targa su permesso': 'residenti',
};

/** The plates a request names ("Targa: AB123CD." in a message, or its fields). */
function platesOf(detail) {
  const m = /Targ(?:a|he)\s*:\s*([A-Z0-9][A-Z0-9 ,]*[A-Z0-9])/i.exec(detail.description || '');
  if (m) return m[1].split(/[\s,]+/).filter(Boolean).map((p) => p.toUpperCase());
  return Array.isArray(detail.fields?.plates) ? detail.fields.plates : [];
}

/** The offset of Europe/Rome at `date`, as "+01:00". */
function romeOffset(date) {
  const name = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Rome', timeZoneName: 'longOffset' })
    .formatToParts(date).find((p) => p.type === 'timeZoneName').value;
  return name === 'GMT' ? '+00:00' : name.replace('GMT', '');
}

/**
 * The cases each task works on, chosen through the API by what they are (never by a
 * reference written here: the demo tells its story relative to "now"), all different.
 */
async function pickCases(base, operator) {
  const used = new Set();
  const take = (ref) => { used.add(ref); return ref; };
  const picks = {};

  // b: a permit request received by e-mail, not yet reviewed, that can become a permit.
  const byEmail = await listCases(base, operator, 'case_type=ztl_permit&channel=email&status=received');
  for (const c of byEmail) {
    const detail = await api(base, operator, 'GET', `/api/v1/cases/${c.reference}`);
    const category = CATEGORY_OF_SUBJECT[detail.subject];
    const plates = platesOf(detail);
    if (category && plates.length > 0 && detail.citizen?.fiscal_code) {
      picks.permit = { ref: take(c.reference), category, plates };
      break;
    }
  }

  // c: another permit request not yet reviewed (integration may be asked once per case:
  // a received case has never had it), from a citizen the office can write to.
  const received = await listCases(base, operator, 'case_type=ztl_permit&status=received');
  for (const c of received) {
    if (used.has(c.reference) || !['web', 'email', 'pec', 'counter'].includes(c.channel)) continue;
    const detail = await api(base, operator, 'GET', `/api/v1/cases/${c.reference}`);
    if (detail.citizen?.email || detail.citizen?.pec) {
      picks.document = { ref: take(c.reference), missing: 'carta_circolazione' };
      break;
    }
  }

  // d: a citizen with a phone and an open call-back on an open case.
  const callbacks = await api(base, operator, 'GET', '/api/v1/callbacks?per_page=100');
  const callback = callbacks.items.find((cb) => cb.status === 'open' && cb.phone && !used.has(cb.case));
  if (callback) picks.call = { ref: take(callback.case), phone: callback.phone, name: callback.citizen_name, callback: callback.id };

  // e: a contested fine, not yet decided, whose evidence shows a transit authorised by a
  // CUDE permit. When the demo has none open now, the citizen contests one (as the
  // portal does): a transit of a CUDE permit's plate, on a weekday morning of its validity.
  const open = [
    ...(await listCases(base, operator, 'case_type=seg&status=received')),
    ...(await listCases(base, operator, 'case_type=seg&status=in_review')),
  ];
  for (const c of open) {
    if (used.has(c.reference)) continue;
    const evidence = await fetch(`${base}/api/v1/cases/${c.reference}/evidence`, { headers: { authorization: `Bearer ${operator.token}` } });
    if (!evidence.ok) continue;
    const ev = await evidence.json();
    const cude = new Set((ev.permits || []).filter((p) => p.category === 'cude').map((p) => p.number));
    const transit = (ev.transits || []).find((t) => t.verdict === 'permit' && cude.has(t.permit));
    if (transit) {
      picks.annul = { ref: take(c.reference), permit: transit.permit, made: false };
      break;
    }
  }
  if (!picks.annul) picks.annul = await contestCudeTransit(base, operator, take);
  return picks;
}

/** A contested fine on a transit a CUDE permit authorised, sent as the portal would. */
async function contestCudeTransit(base, operator, take) {
  for (const c of await listCases(base, operator, 'case_type=cude&status=issued')) {
    const detail = await api(base, operator, 'GET', `/api/v1/cases/${c.reference}`);
    const issued = detail.timeline.find((e) => e.detail && e.detail.permit && /issue/.test(e.kind + (e.detail.action || '')));
    const number = issued?.detail.permit;
    if (!number) continue;
    const permit = await api(base, operator, 'GET', `/api/v1/permits/${encodeURIComponent(number)}`);
    const plate = (permit.plates || []).find((p) => p.status === 'active' && p.source === 'issued');
    if (permit.state !== 'active' || !plate) continue;
    // A weekday morning (10:30 in Rome) at least a day after the permit starts, in the past.
    const day = new Date(Date.parse(plate.valid_from) + 2 * 86400_000);
    while ([0, 6].includes(day.getUTCDay())) day.setUTCDate(day.getUTCDate() + 1);
    const ymd = day.toISOString().slice(0, 10);
    const at = `${ymd}T10:30:00${romeOffset(new Date(`${ymd}T10:30:00Z`))}`;
    if (Date.parse(at) > Date.now() - 86400_000) continue;
    const created = await api(base, operator, 'POST', '/api/v1/transits/contest', {
      plate: plate.plate,
      fine: 'V/77001',
      permit: number,
      note: 'Il veicolo trasporta una persona con contrassegno CUDE: il transito era autorizzato.',
      citizen: { fiscal_code: permit.holder_fiscal_code, name: permit.holder_name },
      transits: [{ transit_id: `T${ymd.replace(/-/g, '')}103000`, gate: 'V01', timestamp: at }],
    });
    const ev = await api(base, operator, 'GET', `/api/v1/cases/${created.reference}/evidence`);
    if ((ev.transits || []).some((t) => t.verdict === 'permit' && t.permit === number)) {
      return { ref: take(created.reference), permit: number, made: true };
    }
  }
  throw new Error('no CUDE permit of the demo authorises a transit that could be contested');
}

// ----- the five tasks -----

/** a. Triage the orphan queue: the orphan card, the first orphan that can be assigned, assign it. */
async function taskOrphans(clerk, { operator }) {
  const { page } = clerk;
  await clerk.start('/ufficio');
  await clerk.shot('home');
  await clerk.click(page.locator(UI.orphanCard));
  await clerk.shot('orphans');
  let ref;
  const takeable = page.locator(UI.listRows).filter({ has: page.locator(UI.takeButton) });
  if ((await takeable.count()) > 0) {
    // The list takes a case in one click ("Prendi"), whatever its status.
    const row = takeable.first();
    ref = (await row.locator('a[href^="/ufficio/pratiche/"]').first().textContent()).trim();
    await clerk.click(row.locator(UI.takeButton));
    await clerk.noError('take');
  } else {
    // The list says each case's status (column "Stato"): the first that may be assigned.
    const headers = (await page.locator(UI.listHeaders).allInnerTexts()).map((t) => t.trim());
    const column = headers.indexOf('Stato') + 1;
    check(column > 0, `a "Stato" column in the list (${headers.join(', ')})`);
    const rows = page.locator(UI.listRows).filter({
      has: page.locator(`td:nth-child(${column})`, { hasText: UI.assignableStatus }),
    });
    check((await rows.count()) > 0, 'an orphan that can be assigned in the list');
    const link = rows.first().locator('a[href^="/ufficio/pratiche/"]').first();
    ref = (await link.textContent()).trim();
    await clerk.click(link);
    const me = page.getByRole('button', { name: UI.assignToMe });
    if ((await me.count()) > 0) {
      await clerk.click(me);
      await clerk.noError('assign to me');
    } else {
      // A login typed today; a list of colleagues to choose from when the field is a list.
      await clerk.act('assign', { '[name=user]': operator.login });
    }
  }
  await clerk.shot('assigned');
  const after = await api(clerk.base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(after.assignee === operator.login, `${ref} assigned to ${operator.login} (it is ${after.assignee})`);
  check((await page.locator(UI.doneNotice).count()) > 0, 'the page says the assignment was done');
  return ref;
}

/** b. From e-mail to permit issued and whitelisted. */
async function taskPermit(clerk, { operator, supervisor, picks }) {
  const { page, base } = clerk;
  check(picks.permit, 'the demo has a permit request received by e-mail and not yet reviewed');
  const { ref, category, plates } = picks.permit;
  await clerk.start(`/ufficio/pratiche/${ref}`);
  await clerk.shot('received');
  await clerk.reviewFor('approve');
  // The category's documents: before, the list named them as ids, "Residenti (a, b)",
  // typed into a text field; with the checklist, the category's names "Residenti (A, B)"
  // are the labels of boxes, of which those not ticked yet are ticked.
  const form = page.locator(UI.permitForm);
  const label = await form.locator(`[name=category] option[value="${category}"]`).innerText();
  const inBrackets = (/\(([^()]*)\)\s*$/.exec(label) || [null, ''])[1].split(',').map((d) => d.trim()).filter(Boolean);
  await clerk.enter(form.locator('[name=category]'), category);
  await clerk.enter(form.locator('[name=plates]'), plates.join(', '));
  const boxes = form.locator('input[type=checkbox][name=documents]');
  let documents = inBrackets;
  if ((await boxes.count()) > 0) {
    // The boxes whose label is one of the category's documents, by their values.
    documents = await boxes.evaluateAll((bs, names) => bs
      .filter((b) => names.includes((b.labels[0]?.innerText || '').split('\n')[0].trim()))
      .map((b) => b.value), inBrackets);
    check(documents.length === inBrackets.length, `a box for each document of ${category} (${inBrackets.join(', ')})`);
  }
  await clerk.enter(form.locator('[name=documents]'), documents.join(', '));
  await clerk.shot('permit-data');
  const oneStep = form.locator('button[name=then][value=issue]');
  if ((await oneStep.count()) > 0) {
    // Saved, approved and issued in one step (each journaled as its own).
    await clerk.click(oneStep);
    await clerk.noError('saved, approved and issued');
  } else {
    await clerk.click(form.locator('button[type=submit]'));
    await clerk.noError('permit data saved');
    await clerk.act('approve');
    await clerk.act('issue');
  }
  await clerk.shot('issued');
  const detail = await api(base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(detail.status === 'issued', `${ref} issued (it is ${detail.status})`);
  const number = detail.timeline.find((e) => e.kind === 'permit_issued')?.detail.permit;
  check(number, `a permit issued on ${ref}`);
  check((await page.locator('main').innerText()).includes(number), `the case page names permit ${number}`);
  // The permit's page: by a link on the case page when there is one; today the operator
  // opens the permits page and types the number read on the case page.
  const direct = page.locator(`main a[href="/ufficio/permessi/${number}"]`);
  if ((await direct.count()) > 0) {
    await clerk.click(direct);
  } else {
    await clerk.click(page.locator(UI.permitsMenu));
    await clerk.type(page.locator(UI.permitNumber), number);
    await clerk.click(page.locator(UI.permitOpen));
  }
  await clerk.shot('permit');
  check((await page.locator('main h1').innerText()).includes(number), `the page of permit ${number}`);
  for (const plate of plates) {
    const row = page.locator('main table tbody tr', { hasText: plate });
    check((await row.count()) > 0 && /attiva/.test(await row.first().innerText()), `permit ${number} shows ${plate} active`);
  }
  // Whitelisted: the list the gates read (the supervisor's) names each plate now.
  const res = await fetch(`${base}/api/v1/whitelist`, { headers: { authorization: `Bearer ${supervisor.token}` } });
  check(res.ok, `the whitelist answered ${res.status}`);
  const list = await res.text();
  for (const plate of plates) check(list.includes(plate), `${plate} on the whitelist`);
  return `${ref} → ${number}`;
}

/** c. A missing document asked for and received; the clock runs again. */
async function taskDocument(clerk, { operator, picks }) {
  const { page, base } = clerk;
  check(picks.document, 'the demo has a permit request not yet reviewed from a citizen the office can write to');
  const { ref, missing } = picks.document;
  await clerk.start(`/ufficio/pratiche/${ref}`);
  await clerk.reviewFor('request_integration');
  await clerk.act('request_integration', { '[name=missing]': missing });
  await clerk.shot('waiting');
  const waiting = await api(base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(waiting.status === 'waiting_citizen', `${ref} waits for the citizen (it is ${waiting.status})`);
  check(waiting.sla.state === 'paused', `the clock of ${ref} is paused (it is ${waiting.sla.state})`);
  // The citizen brings the document to the counter.
  await clerk.upload(page.locator(UI.uploadField), { name: `${missing}.pdf`, mimeType: 'application/pdf', buffer: pdf('Carta di circolazione') });
  await clerk.click(page.locator(UI.uploadSubmit));
  await clerk.noError('document uploaded');
  // Before, a second step; now the upload form's pre-ticked box resumes the clock with it.
  if (await clerk.offers('integration_received')) await clerk.act('integration_received');
  await clerk.shot('resumed');
  const after = await api(base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(after.status === 'in_review', `${ref} back in review (it is ${after.status})`);
  check(after.sla.state === 'running', `the clock of ${ref} runs again (it is ${after.sla.state})`);
  check(after.documents.some((d) => d.filename === `${missing}.pdf`), `${missing}.pdf on ${ref}`);
  check(after.timeline.some((e) => e.kind === 'action' && e.detail?.action === 'integration_received'), 'integration received in the timeline');
  return ref;
}

/** d. A known citizen calls: who they are, their case, the call logged with a note. */
async function taskCall(clerk, { operator, picks }) {
  const { page, base } = clerk;
  check(picks.call, 'the demo has a citizen with a phone and an open call-back');
  const { ref, phone, name } = picks.call;
  const note = 'Il cittadino ha chiamato: spiegato cosa manca, lo porterà allo sportello.';
  await clerk.start(`/ufficio/chiamata?numero=${encodeURIComponent(phone)}`);
  await clerk.shot('call');
  check((await page.locator('main').innerText()).includes(name), `the call page names ${name}`);
  const row = page.locator('main table tbody tr', { has: page.locator(`a[href="/ufficio/pratiche/${ref}"]`) });
  check((await row.count()) > 0, `the call page lists ${ref}`);
  const logHere = page.locator(`${UI.callLogForm}[action*="${ref}"], ${UI.callLogForm}:has([value="${ref}"])`);
  if ((await logHere.count()) > 0) {
    // The call page says what each case waits for, and logs the call on it in one step.
    await clerk.type(logHere.first().locator('[name=note]'), note);
    await clerk.click(logHere.first().locator('button[type=submit]'));
  } else {
    // Before: the case read on its page, which has nowhere to log a call; back; the case's
    // open call-back, on the call-backs page.
    await clerk.click(row.first().locator(`a[href="/ufficio/pratiche/${ref}"]`));
    await clerk.shot('case');
    await clerk.back();
    await clerk.click(row.first().locator('a[href^="/ufficio/richiamate"]'));
    const entry = page.locator('main li', { has: page.locator(`h2 a[href="/ufficio/pratiche/${ref}"]`) });
    check((await entry.count()) > 0, `the call-backs page lists ${ref}`);
    await clerk.type(entry.first().locator(UI.callbackNote), note);
    await clerk.click(entry.first().locator(UI.callbackReached));
  }
  await clerk.noError('call logged');
  await clerk.shot('logged');
  const after = await api(base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(JSON.stringify(after.timeline).includes(note), `the call and its note in the timeline of ${ref}`);
  // Either way the citizen was reached: the open call-back is done.
  const open = await api(base, operator, 'GET', '/api/v1/callbacks?per_page=100');
  check(!open.items.some((cb) => cb.id === picks.call.callback && cb.status === 'open'), `call-back ${picks.call.callback} done`);
  return ref;
}

/** e. A fine on a transit a CUDE permit authorised: annulled with reasons. */
async function taskAnnul(clerk, { operator, picks }) {
  const { page, base } = clerk;
  const { ref, permit } = picks.annul;
  const reasons = 'Transito autorizzato: il veicolo era al servizio di una persona con contrassegno CUDE attivo.';
  await clerk.start(`/ufficio/pratiche/${ref}`);
  const status = (await api(base, operator, 'GET', `/api/v1/cases/${ref}`)).status;
  if (status === 'received') await clerk.reviewFor('annul');
  await clerk.shot('evidence');
  check((await page.locator('main').innerText()).includes(permit), `the case page shows the evidence of permit ${permit}`);
  await clerk.act('annul', { '[name=reasons]': reasons });
  await clerk.shot('annulled');
  const after = await api(base, operator, 'GET', `/api/v1/cases/${ref}`);
  check(after.status === 'closed', `${ref} closed (it is ${after.status})`);
  check(after.timeline.some((e) => e.kind === 'action' && e.detail?.action === 'annul' && JSON.stringify(e.detail).includes(reasons)), `the annulment and its reasons in the timeline of ${ref}`);
  return ref;
}

const TASKS = [
  ['orphans', 'a', taskOrphans],
  ['permit', 'b', taskPermit],
  ['document', 'c', taskDocument],
  ['call', 'd', taskCall],
  ['annul', 'e', taskAnnul],
];

// ----- the run -----

/** The id detector itself: what must count as an id does, what must not does not. */
function idSelfTest() {
  const ids = ['carta_circolazione', 'documento_identita, carta_circolazione', 'l.neri', 'operatore', 'ZTL-2026-000097', 'vedi RES202600010'];
  const words = ['Mario Rossi', 'AB123CD', 'Il cittadino porterà la carta di circolazione.', 'Transito autorizzato (CUDE)'];
  const missed = ids.filter((t) => idsIn(t).length === 0);
  const wrong = words.filter((t) => idsIn(t).length > 0);
  if (missed.length || wrong.length) fail(`the id detector missed ${JSON.stringify(missed)} and took ${JSON.stringify(wrong)} for ids`);
}

/**
 * The counting itself, on a form made for it: a choice and an unticked box are a click
 * each, a box already ticked and a field already holding its value cost nothing, a typed
 * field is one typed field (and one typed id when it holds one).
 */
async function countingSelfTest(browser) {
  const context = await browser.newContext({ viewport: WIDE });
  const page = await context.newPage();
  await page.setContent(`<main><form>
    <select name="category"><option value="a">A</option><option value="b">B</option></select>
    <input type="checkbox" name="documents" value="x" checked><input type="checkbox" name="documents" value="y">
    <input type="text" name="plates" value="AB123CD"><textarea name="missing"></textarea></form></main>`);
  const clerk = new Clerk(page, '', 'self-test');
  await clerk.enter(page.locator('[name=category]'), 'b');
  await clerk.enter(page.locator('[name=documents]'), 'x, y');
  await clerk.enter(page.locator('[name=plates]'), 'ab123cd');
  await clerk.enter(page.locator('[name=missing]'), 'carta_circolazione');
  const r = clerk.result();
  const ticked = await page.locator('[name=documents]:checked').count();
  if (r.clicks !== 2 || r.typed !== 1 || r.typed_ids !== 1 || ticked !== 2) {
    fail(`counting self-test: ${JSON.stringify(r)}, ${ticked} boxes ticked (want 2 clicks, 1 typed field, 1 typed id, 2 boxes)`);
  }
  await context.close();
}

async function main() {
  idSelfTest();
  await mkdir(shotsDir, { recursive: true });
  for (const f of await readdir(shotsDir)) {
    if (f.endsWith('.png')) await rm(path.join(shotsDir, f), { force: true });
  }
  console.log(`server:   ${serverBin}`);
  console.log(`browser:  ${browserBin}`);
  const server = await startServer(serverBin, root, { prefix: 'sportello-tasks-' });
  console.log(`serving:  ${server.base}`);
  const results = {};
  let browser;
  try {
    const { operator, supervisor } = server.logins;
    const picks = await pickCases(server.base, operator);
    console.log(`cases:    ${JSON.stringify(picks)}`);
    browser = await chromium.launch({ executablePath: browserBin, headless: true, args: chromiumArgs() });
    console.log(`chromium: ${browser.version()}`);
    console.log(`axe-core: ${axeVersion}, tags ${AXE_TAGS.join(', ')}, at ${WIDE.width} and ${NARROW.width} px`);
    await countingSelfTest(browser);
    for (const [name, letter, play] of TASKS) {
      if (ONLY.length > 0 && !ONLY.includes(letter) && !ONLY.includes(name)) continue;
      const context = await browser.newContext({ viewport: WIDE, locale: 'it-IT' });
      const page = await context.newPage();
      page.on('pageerror', (err) => fail(`task ${name}: page error ${err.message}`));
      const clerk = new Clerk(page, server.base, name);
      try {
        await signIn(page, server.base, operator);
        const what = await play(clerk, { operator, supervisor, picks });
        const r = clerk.result();
        results[name] = { ...r, case: what };
        console.log(`task ${name}: ${r.clicks} clicks, ${r.typed} typed fields, ${r.typed_ids} typed ids  (${what}; ${r.pages} pages audited twice${r.ids.length ? `; ids typed: ${r.ids.join('; ')}` : ''})`);
      } catch (e) {
        fail(`task ${name}: ${e.message}`);
        await page.screenshot({ path: path.join(shotsDir, `${name}-failed.png`), fullPage: true }).catch(() => {});
      }
      await context.close();
    }
  } catch (e) {
    fail(`the run stopped: ${e.stack || e}`);
  } finally {
    if (browser) await browser.close();
    await server.stop();
  }
  // A run that played nothing (a misspelt TASKS) measured nothing: that is a failure.
  if (Object.keys(results).length === 0) fail(`no task was played (TASKS=${ONLY.join(',') || 'all'})`);
  await writeFile(path.join(shotsDir, 'tasks.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log('');
  console.log(`tasks: ${Object.keys(results).length} done, ${failures.length} failures; screenshots in ${shotsDir}`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

await main();
