// Vite builds the web client from web/ into web/dist/, which the server serves at `/`
// (WEB_DIR). `npm run build:web` runs it; `npm start` and `npm test` build first.
// `npx vite web` serves it with hot reload, passing /ws and /api to a server on :8000.
import { defineConfig, type Plugin } from 'vite';

const backend = process.env.CHORUS_URL ?? 'http://127.0.0.1:8000';

/** The dev server injects styles inline, which the page's CSP forbids: drop the CSP there only. */
const noCspInDev: Plugin = {
  name: 'chorus-no-csp-in-dev',
  apply: 'serve',
  transformIndexHtml: (html) => html.replace(/<meta\s+http-equiv="Content-Security-Policy"[\s\S]*?\/>/, ''),
};

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  publicDir: false,
  plugins: [noCspInDev],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // The capture worklet must be its own file: AudioWorklet.addModule() loads it by URL.
    assetsInlineLimit: 0,
  },
  worker: { format: 'es' },
  server: {
    proxy: {
      '/api': backend,
      '/healthz': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
});
