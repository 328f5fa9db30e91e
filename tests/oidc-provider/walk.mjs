// Plays the browser against provider.mjs, without a browser:
//   node walk.mjs <authorize_url> <email>
// Follows redirects by hand with a small cookie jar, submits the dev login form
// (login=<email>, any password) and the consent form, and prints the first
// redirect Location that leaves the provider's origin (the RP callback URL,
// e.g. http://127.0.0.1:9/cb?code=...&state=...&iss=...). Reference for the
// Rust test's reqwest version; README.md describes the same walk.
const [authorizeUrl, email] = process.argv.slice(2);
if (!authorizeUrl || !email) {
  console.error('usage: node walk.mjs <authorize_url> <email>');
  process.exit(2);
}
const origin = new URL(authorizeUrl).origin;

// Cookie jar: host -> name -> {value, path}. oidc-provider scopes its cookies by
// path (/interaction/<uid>, /auth/<uid>, /), so honour Path like a real jar.
const jar = new Map();
function storeCookies(url, res) {
  const cookies = jar.get(url.host) ?? new Map();
  jar.set(url.host, cookies);
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const name = pair.slice(0, pair.indexOf('='));
    const value = pair.slice(pair.indexOf('=') + 1);
    const attr = (k) => attrs.find((a) => a.toLowerCase().startsWith(`${k}=`))?.split('=')[1];
    const expired = (attr('expires') && Date.parse(attr('expires')) <= Date.now()) || attr('max-age') === '0';
    const key = `${name}\0${attr('path') ?? '/'}`;
    if (expired || value === '') cookies.delete(key);
    else cookies.set(key, { name, value, path: attr('path') ?? '/' });
  }
}
function cookieHeader(url) {
  return [...(jar.get(url.host)?.values() ?? [])]
    .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .map((c) => `${c.name}=${c.value}`).join('; ');
}

async function request(method, url, form) {
  const res = await fetch(url, {
    method,
    redirect: 'manual',
    headers: {
      cookie: cookieHeader(url),
      ...(form && { 'content-type': 'application/x-www-form-urlencoded' }),
    },
    body: form && new URLSearchParams(form).toString(),
  });
  storeCookies(url, res);
  console.error(`${method} ${url.pathname} -> ${res.status} ${res.headers.get('location') ?? ''}`);
  return res;
}

let method = 'GET';
let url = new URL(authorizeUrl);
let form;
for (let step = 0; step < 20; step += 1) {
  const res = await request(method, url, form);
  [method, form] = ['GET', undefined];
  if (res.status >= 300 && res.status < 400) {
    url = new URL(res.headers.get('location'), url);
    if (url.origin !== origin) { // left the provider: this is the RP callback
      process.stdout.write(`${url.href}\n`);
      process.exit(0);
    }
    continue;
  }
  const html = await res.text();
  const action = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(html)?.[1];
  const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
  if (res.status !== 200 || !action || !prompt) {
    console.error(`unexpected ${res.status} answer:\n${html}`);
    process.exit(1);
  }
  // Login page: prompt=login + login + password. Consent page: prompt=consent.
  method = 'POST';
  url = new URL(action.replaceAll('&amp;', '&'), url);
  form = prompt === 'login' ? { prompt, login: email, password: 'any' } : { prompt };
}
console.error('too many steps');
process.exit(1);
