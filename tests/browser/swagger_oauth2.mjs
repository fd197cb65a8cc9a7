// Browser check: Swagger UI's OAuth2 password flow against a running authd.
//
// Opens <AUTHD_URL>/docs, logs in through Authorize -> "oauth2 (OAuth2, password)",
// then runs GET /users/me/ with "Try it out" and expects 200 with the username
// in the body. Not part of `cargo test`; see README.md in this folder.
//
// Env:
//   AUTHD_URL        base URL incl. any AUTHD_URL_PREFIX (default http://127.0.0.1:8000)
//   AUTHD_USERNAME   default alice
//   AUTHD_PASSWORD   default "correct horse battery staple"
//   CHROMIUM_PATH    default /usr/bin/chromium
//   SCREENSHOT       default /tmp/swagger-check/final.png
//   STEP_TIMEOUT_MS  default 15000
//   NODE_PATH        must contain the node_modules folder holding playwright-core
//                    (it is resolved with require(), which honours NODE_PATH;
//                    plain ESM `import` would not)

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.error(
    'FAIL: cannot load playwright-core. Install it outside the repo, e.g.\n' +
      '  mkdir -p /tmp/swagger-check && npm install --prefix /tmp/swagger-check playwright-core\n' +
      'and run with NODE_PATH=/tmp/swagger-check/node_modules\n' +
      `(${e.message.split('\n')[0]})`,
  );
  process.exit(2);
}

const BASE = (process.env.AUTHD_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const USERNAME = process.env.AUTHD_USERNAME || 'alice';
const PASSWORD = process.env.AUTHD_PASSWORD || 'correct horse battery staple';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOT = process.env.SCREENSHOT || '/tmp/swagger-check/final.png';
const T = Number(process.env.STEP_TIMEOUT_MS || 15000);

const basePath = new URL(BASE + '/').pathname.replace(/\/$/, ''); // '' or '/auth'
const expectedTokenPath = `${basePath}/oauth/token`;
const mePath = `${basePath}/users/me/`;

const log = (...a) => console.log('[swagger_oauth2]', ...a);

class StepError extends Error {}
async function step(name, fn) {
  log(`step: ${name}`);
  try {
    return await fn();
  } catch (e) {
    const err = new StepError(`step "${name}" failed: ${e.message.split('\n')[0]}`);
    err.cause = e;
    throw err;
  }
}

// Never print a full credential: show the scheme, and for Basic also the
// decoded client part only when it is the empty-client value "Og==" (":").
function describeAuthHeader(value) {
  if (value === undefined) return { sent: false };
  const [scheme, ...rest] = value.split(' ');
  const cred = rest.join(' ');
  const out = { sent: true, scheme };
  if (/^basic$/i.test(scheme) && cred === 'Og==') out.value = 'Basic Og==';
  else out.credential = `<redacted, ${cred.length} chars>`;
  return out;
}

const observed = {
  tokenRequests: [], // {method, url, status, authorization, contentType, body fields}
  meRequests: [], // {method, url, status, authorization}
  failedRequests: [],
  httpErrors: [], // any response >= 400, e.g. a favicon 404
  consoleErrors: [],
};

let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // chromium.launch always uses a fresh temporary profile (user-data-dir)
    // that Playwright deletes on close.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(T);

  page.on('console', (m) => {
    if (m.type() === 'error') observed.consoleErrors.push(m.text().slice(0, 300));
  });
  page.on('requestfailed', (r) =>
    observed.failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`),
  );
  page.on('response', (resp) => {
    if (resp.status() >= 400) observed.httpErrors.push(`${resp.request().method()} ${resp.url()} -> ${resp.status()}`);
  });
  // Records are pushed synchronously; headers and status are filled in as
  // they become available, so nothing is lost to handler ordering.
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    let rec;
    if (path.endsWith('/oauth/token')) {
      const form = new URLSearchParams(r.postData() || '');
      rec = { method: r.method(), url: r.url(), grant_type: form.get('grant_type'), formFields: [...form.keys()] };
      observed.tokenRequests.push(rec);
    } else if (path.endsWith('/users/me/')) {
      rec = { method: r.method(), url: r.url() };
      observed.meRequests.push(rec);
    } else return;
    rec.pending = Promise.all([
      r.allHeaders().then((h) => {
        rec.authorization = describeAuthHeader(h['authorization']);
        if (h['content-type']) rec.contentType = h['content-type'];
      }),
      r.response().then((resp) => { rec.status = resp ? resp.status() : 'no response'; }),
    ]).catch((e) => { rec.error = e.message; });
  });

  // a. open /docs
  await step('open /docs and wait for Swagger UI', async () => {
    const resp = await page.goto(`${BASE}/docs`, { waitUntil: 'domcontentloaded' });
    if (!resp || resp.status() !== 200) throw new Error(`GET ${BASE}/docs -> ${resp?.status()}`);
    await page.locator('.swagger-ui .information-container .title').first().waitFor();
    await page.locator('.swagger-ui .opblock').first().waitFor();
    await page.locator('button.authorize').first().waitFor();
  });

  // b. Authorize with the oauth2 password flow
  await step('authorize via "oauth2 (OAuth2, password)"', async () => {
    await page.locator('.auth-wrapper button.authorize').first().click();
    const modal = page.locator('.dialog-ux .modal-ux');
    await modal.waitFor();
    const section = modal
      .locator('.auth-container')
      .filter({ has: page.locator('h4', { hasText: /oauth2\s*\(OAuth2,\s*password\)/ }) });
    if ((await section.count()) !== 1) {
      const titles = await modal.locator('.auth-container h4').allInnerTexts();
      throw new Error(`no single "oauth2 (OAuth2, password)" section; found: ${JSON.stringify(titles)}`);
    }
    const flowText = await section.innerText();
    const tokenUrlShown = (flowText.match(/Token URL:\s*(\S+)/) || [])[1];
    log(`dialog shows Token URL: ${tokenUrlShown}`);

    await section.locator('input#oauth_username').fill(USERNAME);
    await section.locator('input#oauth_password').fill(PASSWORD);
    // client_id / client_secret are left empty on purpose.
    for (const id of ['client_id', 'client_secret']) {
      const inp = section.locator(`input#${id}`);
      if ((await inp.count()) && (await inp.inputValue()) !== '')
        throw new Error(`${id} is prefilled; expected empty`);
    }
    const tokenResp = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/oauth/token'), {
      timeout: T,
    });
    await section.locator('button.modal-btn.authorize').click();
    const tr = await tokenResp.catch(() => null);
    if (!tr) throw new Error('no response to a /oauth/token request (was it sent? failed: ' +
      JSON.stringify(observed.failedRequests) + ')');
    if (tr.status() !== 200) {
      let detail = '';
      try { detail = (await tr.text()).slice(0, 300); } catch {}
      throw new Error(`token endpoint ${tr.url()} answered ${tr.status()}: ${detail}`);
    }
    const tokenUrlPath = new URL(tr.url()).pathname;
    if (tokenUrlPath !== expectedTokenPath)
      throw new Error(`token request went to ${tokenUrlPath}, expected ${expectedTokenPath}`);
    const body = await tr.json().catch(() => ({}));
    if (!body.access_token || !/^bearer$/i.test(body.token_type || ''))
      throw new Error(`token response lacks access_token / token_type Bearer (keys: ${Object.keys(body)})`);

    const logout = section.locator('button.modal-btn', { hasText: 'Logout' });
    try {
      await logout.waitFor({ timeout: T });
    } catch {
      const errs = await section.locator('.errors').allInnerTexts().catch(() => []);
      throw new Error(`dialog did not show Logout; auth errors: ${JSON.stringify(errs)}`);
    }
    const authorizedLabel = await section.locator('h6', { hasText: 'Authorized' }).count();
    log(`dialog: Logout button visible${authorizedLabel ? ', "Authorized" label shown' : ''}`);
    await modal.locator('button.btn-done, button.close-modal').first().click();
    await modal.waitFor({ state: 'detached' });
  });

  // c. GET /users/me/ -> Try it out -> Execute
  await step('GET /users/me/: Try it out, Execute, expect 200 with the username', async () => {
    const op = page
      .locator('.opblock.opblock-get')
      .filter({ has: page.locator('.opblock-summary-path[data-path="/users/me/"]') });
    if ((await op.count()) !== 1) throw new Error(`expected one GET /users/me/ block, found ${await op.count()}`);
    await op.locator('.opblock-summary').first().click();
    await op.locator('button.try-out__btn').click();
    const meResp = page.waitForResponse((r) => new URL(r.url()).pathname === mePath, { timeout: T });
    await op.locator('button.execute').click();
    await meResp.catch(() => {
      throw new Error(`no response from ${mePath}; failed: ${JSON.stringify(observed.failedRequests)}`);
    });
    const row = op.locator('.live-responses-table tbody tr.response').first();
    await row.waitFor();
    const code = (await row.locator('.response-col_status').innerText()).trim();
    const bodyText = await row.locator('.response-col_description').innerText();
    log(`UI shows response code ${code}`);
    if (code !== '200') throw new Error(`UI shows ${code}, expected 200; body: ${bodyText.slice(0, 300)}`);
    if (!bodyText.includes(`"${USERNAME}"`) && !bodyText.includes(USERNAME))
      throw new Error(`response body does not contain ${USERNAME}: ${bodyText.slice(0, 300)}`);
    await row.scrollIntoViewIfNeeded();
    await op.locator('.responses-wrapper').first().scrollIntoViewIfNeeded();
  });

  // d. network checks
  await step('check recorded network traffic', async () => {
    await Promise.all([...observed.tokenRequests, ...observed.meRequests].map((r) => r.pending));
    if (observed.tokenRequests.length === 0) throw new Error('no /oauth/token request recorded');
    const tok = observed.tokenRequests.at(-1);
    if (tok.method !== 'POST') throw new Error(`/oauth/token method ${tok.method}`);
    if (tok.grant_type !== 'password') throw new Error(`/oauth/token grant_type ${tok.grant_type}`);
    if (tok.status !== 200) throw new Error(`/oauth/token status ${tok.status}`);
    const me = observed.meRequests.at(-1);
    if (!me) throw new Error('no /users/me/ request recorded');
    if (me.status !== 200) throw new Error(`/users/me/ status ${me.status}`);
    if (me.authorization?.scheme !== 'Bearer')
      throw new Error(`/users/me/ Authorization scheme ${JSON.stringify(me.authorization)}, expected Bearer`);
  });

  // e. screenshot
  await step(`screenshot to ${SHOT}`, async () => {
    mkdirSync(dirname(SHOT), { recursive: true });
    // The curl box repeats the bearer token verbatim: mask it in the image.
    await page.screenshot({ path: SHOT, mask: [page.locator('.curl-command, .request-snippets')] });
  });

  log('PASS');
} catch (e) {
  exitCode = 1;
  console.error(`[swagger_oauth2] FAIL: ${e.message}`);
  if (!(e instanceof StepError) && e.stack) console.error(e.stack);
  if (browser) {
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages[0]) {
        const failShot = SHOT.replace(/(\.png)?$/, '-failure.png');
        mkdirSync(dirname(failShot), { recursive: true });
        await pages[0].screenshot({
          path: failShot,
          fullPage: true,
          mask: [pages[0].locator('.curl-command, .request-snippets')],
        });
        console.error(`[swagger_oauth2] failure screenshot: ${failShot}`);
      }
    } catch {}
  }
} finally {
  const strip = ({ pending, ...rest }) => rest;
  log(
    'observed:',
    JSON.stringify(
      {
        base: BASE,
        tokenRequests: observed.tokenRequests.map(strip),
        meRequests: observed.meRequests.map(strip),
        failedRequests: observed.failedRequests,
        httpErrors: observed.httpErrors,
        consoleErrors: observed.consoleErrors,
      },
      null,
      2,
    ),
  );
  if (browser) await browser.close().catch(() => {});
}
process.exit(exitCode);
