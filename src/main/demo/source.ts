/**
 * The source the demo maps: the working tree as pages (`file:<relative path>`), watched by
 * `LocalFsWatcher` in the engine's watch worker.
 */
import type { ContextPageSource } from '../../watchers/source.js';
import { LocalFsWatcher } from '../../watchers/local-fs-watcher.js';

export const DEMO_FILE_DATA_TYPE = 'demo_file';

export async function demoSource(dir: string): Promise<{ source: ContextPageSource; dataType: string }> {
  return { source: new LocalFsWatcher(dir, { dataType: DEMO_FILE_DATA_TYPE }), dataType: DEMO_FILE_DATA_TYPE };
}
