/**
 * isomorphic-git, loaded on first use: it and its dependencies cost the embedder's process ~10 MB of
 * heap and startup time, and most engines never watch a git repository.
 */
type GitModule = typeof import('isomorphic-git').default;
type HttpClient = typeof import('isomorphic-git/http/node').default;

let loading: Promise<{ git: GitModule; http: HttpClient }> | undefined;

/** The isomorphic-git API and its Node HTTP client (one import for the whole process). */
export function loadGit(): Promise<{ git: GitModule; http: HttpClient }> {
  loading ??= Promise.all([import('isomorphic-git'), import('isomorphic-git/http/node')]).then(([git, http]) => ({ git: git.default, http: http.default }));
  return loading;
}
