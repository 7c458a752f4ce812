import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'koa';

/**
 * The dashboard's static files: the page (`dashboard/` in the repository) and uPlot from
 * node_modules, read once at start and served from memory. The page holds no data: it asks the
 * API for everything, with the token its user signs in with, so it is served without one.
 */

/** The route label the page's requests carry in metrics. */
export const DASHBOARD_ROUTE = '/dashboard';

/** Every response of the page carries these: scripts and styles from this origin only, no framing. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The folder holding dashboard/index.html: the repository's, whether this runs from source or from dist/. */
function pageFolder(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'dashboard', 'index.html'))) return join(dir, 'dashboard');
    if (dirname(dir) === dir) throw new Error('dashboard: the dashboard/ folder was not found above the server');
  }
}

interface Asset {
  type: string;
  body: Buffer;
}

/** The dashboard's files by URL path. */
export function loadDashboard(): Map<string, Asset> {
  const folder = pageFolder();
  const uplot = createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
  const files: Array<[string, string]> = [
    ['/dashboard', join(folder, 'index.html')],
    ['/dashboard/dashboard.js', join(folder, 'dashboard.js')],
    ['/dashboard/charts.js', join(folder, 'charts.js')],
    ['/dashboard/dashboard.css', join(folder, 'dashboard.css')],
    ['/dashboard/vendor/uplot.js', uplot],
    ['/dashboard/vendor/uplot.css', join(dirname(uplot), 'uPlot.min.css')],
  ];
  return new Map(
    files.map(([path, file]) => [path, { type: TYPES[file.slice(file.lastIndexOf('.'))]!, body: readFileSync(file) }]),
  );
}

/** Whether a path is the page or one of its files (served without a token). */
export function isDashboardPath(path: string): boolean {
  return path === '/' || path === '/dashboard' || path === '/dashboard/' || path.startsWith('/dashboard/');
}

/** Serves the page: `/` redirects to `/dashboard`; an unknown file is a 404. Returns false for other paths. */
export function createDashboard(): (ctx: Context) => boolean {
  const assets = loadDashboard();
  return (ctx) => {
    const path = ctx.path === '/dashboard/' ? '/dashboard' : ctx.path;
    if (path === '/') {
      ctx.redirect('/dashboard');
      return true;
    }
    const asset = assets.get(path);
    if (!asset) return false;
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return false;
    ctx.set(PAGE_HEADERS);
    ctx.type = asset.type;
    ctx.body = asset.body;
    return true;
  };
}
