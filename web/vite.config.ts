// The web UI's build (issue 13): React + TypeScript, bundled by Vite into dist/web, which the admin API
// serves (src/web/serve.ts). `npm install` builds it (the `prepare` script); so does a first start.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    // one request for the app, one for the charts: the dashboard is the first page
    chunkSizeWarningLimit: 600,
  },
});
