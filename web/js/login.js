// Staff sign-in: a login and password give a session token, kept in this tab like a pasted
// token, and the page that sent the person here opens again.
import { setToken } from './api.js';

const $ = (id) => document.getElementById(id);

/** Where to go after signing in: a path on this site only (never another origin). */
function next() {
  const n = new URLSearchParams(location.search).get('next') || '/';
  return n.startsWith('/') && !n.startsWith('//') && !n.includes('\\') ? n : '/';
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const button = $('submit');
  button.disabled = true;
  $('error').textContent = '';
  try {
    const res = await fetch('/api/v1/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ login: $('login').value.trim().toLowerCase(), password: $('password').value }),
      cache: 'no-store',
    });
    let body = {};
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      $('error').textContent = body.message || `Sign-in failed (HTTP ${res.status})`;
      $('password').select();
      return;
    }
    setToken(body.token);
    location.assign(next());
  } catch (err) {
    $('error').textContent = `The platform cannot be reached: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
});
