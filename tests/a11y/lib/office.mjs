// What run.mjs and tasks.mjs both do with the office: sign in, call the API, make a PDF.

/** Signs in through the login form (in `lang`, remembered by a cookie). */
export async function signIn(page, base, user, lang = 'it') {
  await page.goto(`${base}/ufficio/login?lang=${lang}`);
  await page.fill('#login', user.login);
  await page.fill('#password', user.password);
  await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
  const cookies = await page.context().cookies(base);
  if (!cookies.some((c) => c.name === 'sportello_session')) {
    throw new Error(`signing in as ${user.login} did not give a session cookie`);
  }
}

/** Calls the API as `who` (a demo login with its token); throws unless the answer is 2xx. */
export async function api(base, who, method, pathAndQuery, body) {
  const res = await fetch(base + pathAndQuery, {
    method,
    headers: { authorization: `Bearer ${who.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${pathAndQuery}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A small but real PDF, for the documents a citizen sends or brings. */
export function pdf(text) {
  const body = `BT /F1 18 Tf 72 720 Td (${text.replace(/[()\\]/g, '')}) Tj ET`;
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${body.length} >>\nstream\n${body}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}
