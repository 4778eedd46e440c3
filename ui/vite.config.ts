// The production build goes into the Python package, where the query role serves it at `/`.
// Assets are addressed relative to index.html's <base href>, which the server rewrites for
// `--query.base-path`, so one build works under any base path.
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

/** Moves index.html's trace prefetch (`<script data-trace-prefetch>`) to just after the app's
 * module script tag that the build adds at the end of <head>. The browser then asks for the bundle
 * first and the trace second: the server sends the bundle at once instead of after building a
 * large trace's answer, and the two still load side by side. */
function prefetchAfterBundle(): Plugin {
  const prefetch = /\s*<script data-trace-prefetch>[\s\S]*?<\/script>/;
  const bundle = /<script type="module"[^>]*><\/script>/;
  return {
    name: 'tracemesh-prefetch-after-bundle',
    apply: 'build',
    transformIndexHtml: {
      order: 'post',
      handler(html) {
        const script = prefetch.exec(html)?.[0];
        if (!script || !bundle.test(html)) throw new Error('index.html: prefetch or bundle script not found');
        return html.replace(script, '').replace(bundle, (tag) => `${tag}${script}`);
      },
    },
  };
}

export default defineConfig({
  plugins: [react(), prefetchAfterBundle()],
  base: './',
  build: {
    outDir: '../src/tracemesh/query/ui',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:16686' } },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
});
