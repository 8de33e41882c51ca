/**
 * Which paths a file watcher skips: `.git`, `node_modules` and dotfiles (except `.gitignore` and
 * `.gitattributes`) anywhere in the tree, plus the user's globs (picomatch, matched against the
 * root-relative path with `/` separators; a glob that matches a directory ignores everything in it).
 */
import picomatch from 'picomatch';

/** Directory names ignored at any depth. */
export const DEFAULT_IGNORED_NAMES: readonly string[] = Object.freeze(['.git', 'node_modules']);
/** Dotfiles that are watched all the same. */
export const WATCHED_DOTFILES: readonly string[] = Object.freeze(['.gitignore', '.gitattributes']);

/** Globs handed to the native watcher so that it does not even watch the default-ignored trees. */
export const NATIVE_IGNORE_GLOBS: readonly string[] = Object.freeze(['**/.git', '**/.git/**', '**/node_modules', '**/node_modules/**']);

/** A predicate over root-relative paths (`a/b/c.txt`): true when the path is ignored. */
export type IgnoreMatcher = (relativePath: string) => boolean;

export function compileIgnore(globs: readonly string[]): IgnoreMatcher {
  const user = globs.length === 0 ? undefined : picomatch(globs as string[], { dot: true });
  return (relativePath) => {
    if (relativePath === '') return false;
    const segments = relativePath.split('/');
    for (let i = 0; i < segments.length; i++) {
      const name = segments[i]!;
      if (DEFAULT_IGNORED_NAMES.includes(name)) return true;
      if (name.startsWith('.') && !(i === segments.length - 1 && WATCHED_DOTFILES.includes(name))) return true;
    }
    if (user === undefined) return false;
    // A glob naming a directory (`build`, `dist/**`) ignores what is inside it too.
    let prefix = '';
    for (let i = 0; i < segments.length; i++) {
      prefix = i === 0 ? segments[0]! : `${prefix}/${segments[i]}`;
      if (user(prefix)) return true;
    }
    return false;
  };
}
