// The production build goes into the Python package, where the query role serves it at `/`.
// Assets are addressed relative to index.html's <base href>, which the server rewrites for
// `--query.base-path`, so one build works under any base path.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  base: './',
  build: {
    outDir: '../src/tracemesh/query/ui',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:16686' } },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
});
