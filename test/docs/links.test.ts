/**
 * The repository stands alone: every relative link in a markdown file reaches a file of the repository (and, into
 * a markdown file, a heading it has), and every `*.md` file named in markdown, in a code comment or in a test's
 * name is one the repository holds; and no markdown table is cut in two by a blank line. Files are those git knows
 * (tracked, or new and not ignored).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

const files: string[] = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '' && existsSync(join(root, f)))
const fileSet = new Set(files)
const folders = new Set(
  files.flatMap((f) => {
    const parts = f.split('/')
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'))
  }),
)
const read = (file: string): string => readFileSync(join(root, file), 'utf8')
const markdownFiles = files.filter((f) => f.endsWith('.md'))

/** Markdown without fenced code blocks (kept as blank lines, so line numbers still match). */
const withoutFences = (markdown: string): string => markdown.replace(/^ {0,3}(```|~~~)[\s\S]*?^ {0,3}\1[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ''))

/** GitHub's anchors for a markdown file's headings: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const [, heading] of withoutFences(markdown).matchAll(/^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/gm)) {
    const base = (heading ?? '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      // Code spans keep their text (`<space>` in one is not a tag); tags outside them are dropped.
      .replace(/`([^`]*)`|<[^>]*>/g, (_, code: string | undefined) => code ?? '')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  return anchors
}

/** The targets of a markdown file's links and images (inline and reference definitions), outside code. */
function linkTargets(markdown: string): string[] {
  const text = withoutFences(markdown).replace(/`[^`\n]*`/g, '')
  return [
    ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? ''),
    ...[...text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1] ?? ''),
  ].filter((t) => t !== '' && !/^[a-z][a-z0-9+.-]*:/i.test(t))
}

/** Why the link `target` in `file` is broken, or undefined when it reaches a file (and heading) of the repository. */
function brokenLink(file: string, target: string): string | undefined {
  const hash = target.indexOf('#')
  const pathPart = decodeURIComponent((hash < 0 ? target : target.slice(0, hash)).replace(/\?.*$/, ''))
  const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1))
  const resolved = pathPart === '' ? file : posix.normalize(pathPart.startsWith('/') ? pathPart.slice(1) : posix.join(posix.dirname(file), pathPart)).replace(/\/$/, '')
  if (resolved.startsWith('..')) return 'points outside the repository'
  if (!fileSet.has(resolved) && !folders.has(resolved)) return 'no such file in the repository'
  if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md') && !headingAnchors(read(resolved)).has(anchor)) return `${resolved} has no heading #${anchor}`
  return undefined
}

/** `*.md` names in a text, outside URLs. */
const mdNames = (text: string): string[] =>
  [...text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s)>\]'"`]+/gi, '').matchAll(/[\w./-]*[\w-]\.md(?![\w-])/g)].map((m) => m[0])

/** Whether the repository holds the file a cited name means (a path from the root, or a name ending some path). */
const holds = (name: string): boolean => {
  const path = name.replace(/^(\.{1,2}\/)+/, '')
  return files.some((f) => f === path || f.endsWith(`/${path}`))
}

const TEST_CALLS = new Set(['describe', 'it', 'test', 'suite'])

/** The comments of a TypeScript or JavaScript file, and the names its tests are given. */
function codeTexts(file: string, source: string): string[] {
  const kind = file.endsWith('.tsx') ? ts.ScriptKind.TSX : file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, kind)
  const comments = new Map<number, string>()
  const names: string[] = []
  const addComments = (ranges: ts.CommentRange[] | undefined): void => {
    for (const r of ranges ?? []) comments.set(r.pos, source.slice(r.pos, r.end))
  }
  const visit = (node: ts.Node): void => {
    addComments(ts.getLeadingCommentRanges(source, node.getFullStart()))
    addComments(ts.getTrailingCommentRanges(source, node.getEnd()))
    if (ts.isCallExpression(node)) {
      let callee: ts.Expression = node.expression
      while (ts.isPropertyAccessExpression(callee) || ts.isCallExpression(callee)) callee = ts.isCallExpression(callee) ? callee.expression : callee.expression
      const first = node.arguments[0]
      if (ts.isIdentifier(callee) && TEST_CALLS.has(callee.text) && first !== undefined && ts.isStringLiteralLike(first)) names.push(first.text)
    }
    for (const child of node.getChildren(sf)) visit(child)
  }
  visit(sf)
  return [...comments.values(), ...names]
}

/** `#` comments of a shell or Python file, and Python's triple-quoted docstrings. */
const hashComments = (source: string): string[] => [
  ...[...source.matchAll(/(?:^|\s)#(.*)$/gm)].map((m) => m[1] ?? ''),
  ...[...source.matchAll(/"""([\s\S]*?)"""/g)].map((m) => m[1] ?? ''),
]

/** Where a file names `*.md` files: all of a markdown file; the comments (and test names) of code. */
function citingTexts(file: string): string[] {
  const kind = file.endsWith('.md') ? 'markdown' : /\.(ts|tsx|js|mjs|cjs)$/.test(file) ? 'code' : /\.(sh|py)$/.test(file) || file === '.ci/run' ? 'hash' : undefined
  if (kind === undefined) return []
  const source = read(file)
  // Parsing is the slow part; most files name no markdown file at all.
  if (!/\.md(?![\w-])/.test(source)) return []
  return kind === 'markdown' ? [source] : kind === 'code' ? codeTexts(file, source) : hashComments(source)
}

describe('the repository stands alone', () => {
  it('every relative link in a markdown file reaches a file of the repository, and a heading that exists', () => {
    const broken: string[] = []
    let checked = 0
    for (const file of markdownFiles) {
      for (const target of linkTargets(read(file))) {
        checked++
        const why = brokenLink(file, target)
        if (why !== undefined) broken.push(`${file}: (${target}) ${why}`)
      }
    }
    expect(broken).toEqual([])
    expect(checked).toBeGreaterThan(50)
  })

  it('every *.md file named in markdown, a code comment or a test name is in the repository', () => {
    const missing: string[] = []
    let checked = 0
    for (const file of files) {
      for (const text of citingTexts(file)) {
        for (const name of mdNames(text)) {
          checked++
          if (!holds(name)) missing.push(`${file}: ${name}`)
        }
      }
    }
    expect(missing).toEqual([])
    expect(checked).toBeGreaterThan(20)
  })

  it('no markdown table is cut in two by a blank line (the rows after it would show as text)', () => {
    const cut: string[] = []
    for (const file of markdownFiles) {
      const lines = withoutFences(read(file)).split('\n')
      lines.forEach((line, i) => {
        const startsTable = /^\s*\|[\s:|-]+\|\s*$/.test(lines[i + 1] ?? '')
        if (line.startsWith('|') && lines[i - 1]?.trim() === '' && lines[i - 2]?.startsWith('|') === true && !startsTable) cut.push(`${file}:${i + 1}`)
      })
    }
    expect(cut).toEqual([])
  })

  it('the checks themselves: anchors as GitHub makes them, links and names as they are written', () => {
    expect([...headingAnchors('# Chorus on the wire\n## libp2p: `/chorus/sync/1.0.0`\n## `/sync/<space>`: y-<b>websocket</b>\n```\n# not a heading\n```\n## Notes\n## Notes\n')]).toEqual([
      'chorus-on-the-wire',
      'libp2p-chorussync100',
      'syncspace-y-websocket',
      'notes',
      'notes-1',
    ])
    expect(linkTargets('[a](docs/A.md#x) `[b](B.md)` ![c](img.png "t") [d](https://x.org/y.md)\n[e]: ../E.md\n```\n[f](F.md)\n```\n')).toEqual([
      'docs/A.md#x',
      'img.png',
      '../E.md',
    ])
    // A name no file has, put together so that this file does not itself cite it.
    const missing = ['NOWHERE', 'md'].join('.')
    expect(mdNames(`see (${missing}, docs/LEASES.md) and https://example.org/README.md, not *.md`)).toEqual([missing, 'docs/LEASES.md'])
    expect(brokenLink('docs/LEASES.md', missing)).toBe('no such file in the repository')
    expect(brokenLink('docs/LEASES.md', '../../outside.md')).toBe('points outside the repository')
    expect(brokenLink('docs/LEASES.md', '#the-rules')).toBeUndefined()
    expect(brokenLink('docs/LEASES.md', '#no-such-heading')).toBe('docs/LEASES.md has no heading #no-such-heading')
    expect(holds(missing)).toBe(false)
    expect(holds('docs/LEASES.md')).toBe(true)
    expect(holds('../docs/PROTOCOL.md')).toBe(true)
    const code = codeTexts('x.test.ts', "/** per A.md */\nconst s = 'B.md' // C.md\ndescribe('as D.md says', () => { it.each([1])('E.md %i', () => {}) })\n")
    expect(code.flatMap(mdNames).sort()).toEqual(['A.md', 'C.md', 'D.md', 'E.md'])
  })
})
