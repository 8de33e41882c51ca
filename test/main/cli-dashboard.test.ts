/**
 * The `converge serve` dashboard in a real browser: Playwright (playwright-core) drives Debian's
 * chromium. The page loads without script errors, goes live on /feed, and after a signed git push
 * webhook shows the change in its feed, the counters and an episode bar; a screenshot is taken.
 * Without /usr/bin/chromium the test is skipped with a warning, except under CI=true (where .ci/run
 * installs it). It runs in the src pass only: the page is the same in both targets.
 */
import { createHmac } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const DIST_PASS = process.env.CONVERGE_TEST_TARGET === 'dist';
const SECRET = 'dashboard-test-secret-0123456789';

if (!HAVE_CHROMIUM && process.env.CI !== 'true' && !DIST_PASS) {
  console.warn(`[converge tests] SKIPPED the dashboard browser test: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

describe.skipIf(DIST_PASS || (!HAVE_CHROMIUM && process.env.CI !== 'true'))('converge serve dashboard in chromium', () => {
  let scratch = '';
  let browser: Browser | undefined;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'converge-dashboard-'));
  });
  afterAll(async () => {
    await browser?.close();
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  it('shows counters, the episode timeline and the live feed of a signed webhook; screenshot', async () => {
    if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} is missing and CI=true forbids skipping the browser test`);
    const server = await startCli(['serve', '--port', '0', '--secret', SECRET], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const base = server.match[1]!;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      await page.goto(base);
      await expect.poll(() => page.textContent('#connection'), { timeout: 20_000 }).toBe('live');
      await expect.poll(() => page.textContent('#state'), { timeout: 20_000 }).toBe('idle');

      const push = JSON.stringify({
        ref: 'refs/heads/main',
        after: 'feed000000000000000000000000000000000000',
        repository: { clone_url: 'https://example.com/site.git' },
        commits: [{ added: ['pages/hello.md'], modified: [], removed: [] }],
      });
      const signature = `sha256=${createHmac('sha256', SECRET).update(push).digest('hex')}`;
      const hook = await fetch(`${base}/webhooks/github`, { method: 'POST', body: push, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature } });
      expect(hook.status).toBe(202);

      await page.waitForSelector('#feed tr:has-text("file:pages/hello.md")', { timeout: 20_000 });
      await expect.poll(() => page.textContent('dd[data-counter="eventsReceived"]'), { timeout: 20_000 }).toBe('1');
      await expect.poll(() => page.locator('#timeline div').count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
      expect(await page.textContent('#episodes')).toMatch(/^1 episode; last ep_\w+ settled in [\d.]+ ms$/);

      const shot = join(scratch, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      if (process.env.CONVERGE_KEEP_SCREENSHOT !== undefined) copyFileSync(shot, process.env.CONVERGE_KEEP_SCREENSHOT);
      expect(errors).toEqual([]);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  });
});
