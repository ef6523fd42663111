// The host's API as the page uses it: the token, JSON calls, media URLs with content tokens,
// and small helpers every module shares.

export const $ = (id) => document.getElementById(id);
export const iso = (ms) => new Date(ms).toISOString();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The API token, when the host is beyond loopback: asked for once (a password field, never
// shown), kept for the tab's session and sent only as a bearer header, never in a URL.
let token = sessionStorage.getItem('openva-token') || '';
export const hasToken = () => !!token;
export function setToken(t) {
  token = t;
  sessionStorage.setItem('openva-token', token);
}
const authHeaders = (h = {}) => (token ? { ...h, Authorization: `Bearer ${token}` } : h);
export const authFetch = (url, opts = {}) => fetch(url, { ...opts, headers: authHeaders(opts.headers || {}) });

export class Unauthorized extends Error {}

export const api = async (path, opts = {}) => {
  const r = await authFetch(path, opts);
  if (r.status === 401) {
    $('token-form').hidden = false;
    throw new Unauthorized('this host needs its API token');
  }
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((body && body.error && body.error.message) || `${r.status} ${path}`);
  return body;
};

// Where a browser cannot send a header (a download link, an image, a video's src), the URL
// carries the video's content token instead: short-lived, good for that video's media only
// (POST listContentToken). Kept per video and renewed when less than 10 minutes are left.
const contentTokens = new Map();
async function contentToken(video) {
  let t = contentTokens.get(video);
  if (!t || t.expires - Date.now() < 10 * 60e3) {
    const r = await api(`/api/videos/${encodeURIComponent(video)}/listContentToken`, { method: 'POST' });
    t = { token: r.token, expires: Date.parse(r.expirationDate) };
    contentTokens.set(video, t);
  }
  return t;
}
// `url` (of `video`'s media) with its content token, when the host needs a token.
export async function mediaUrl(video, url) {
  if (!token) return url;
  const t = await contentToken(video);
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(t.token)}`;
}
// Whether a media URL made now for `video` still has a minute of its token left (no token
// needed counts as fresh).
export function mediaUrlFresh(video) {
  const t = contentTokens.get(video);
  return !token || !!(t && t.expires - Date.now() > 60e3);
}
