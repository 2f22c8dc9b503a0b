#!/usr/bin/env node
// Writes docs/api.md, the API reference, from the TSDoc in the sources: every export of
// src/api.ts (`pinpool`) and server/index.ts (`pinpool/server`), its signature as a ```ts block
// and its doc comment, grouped by module and by kind, in a stable order. `@internal` members are
// left out, as tsconfig.build.json's stripInternal leaves them out of the declarations.
//   node scripts/api-docs.mjs                  write docs/api.md (npm run docs:api)
//   node scripts/api-docs.mjs --check          exit 1 if docs/api.md is not what it would write
//   node scripts/api-docs.mjs --undocumented   list the exports without a TSDoc summary (with
//                                              --check too: both in one run)
// The output depends on the sources only: no dates, no absolute paths.
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const output = join(root, 'docs', 'api.md');
const MODULES = [
  { name: 'pinpool', file: 'src/api.ts' },
  { name: 'pinpool/server', file: 'server/index.ts' },
];
/** Sections of each module, in this order. */
const KINDS = [
  ['function', 'Functions'],
  ['class', 'Classes'],
  ['constant', 'Constants'],
  ['enum', 'Enums'],
  ['interface', 'Interfaces'],
  ['type', 'Types'],
];

const config = ts.getParsedCommandLineOfConfigFile(
  join(root, 'tsconfig.build.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  },
);
const program = ts.createProgram(
  MODULES.map((m) => join(root, m.file)),
  { ...config.options, noEmit: true },
);
const checker = program.getTypeChecker();
const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });
const f = ts.factory;

// ---------------------------------------------------------------------------------------------
// Doc comments

/** The closest doc comment of a declaration (a variable's sits on its statement). */
function jsDocOf(node) {
  return ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc).at(-1);
}

/** Doc comment text, with {@link X} as `X`. */
function text(comment) {
  const raw = ts.getTextOfJSDocComment(comment) ?? '';
  return raw
    .replace(/\{@link(?:code|plain)?\s+([^}|\s]+)(?:\s*\|?\s*([^}]*))?\}/g, (_, target, label) =>
      label ? `${label.trim()} (\`${target}\`)` : `\`${target}\``,
    )
    .trim();
}

/** A declaration's doc: summary, and its tags in source order. */
function docOf(node) {
  const doc = jsDocOf(node);
  if (doc === undefined) return { summary: '', tags: [] };
  const tags = (doc.tags ?? []).map((tag) => ({
    name: tag.tagName.text,
    param: ts.isJSDocParameterTag(tag) ? tag.name.getText() : undefined,
    text: text(tag.comment),
  }));
  return { summary: text(doc.comment), tags };
}

function isInternal(node) {
  return ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal');
}

/** The Markdown of a doc comment: summary, parameters, returns, throws, examples, the rest. */
function renderDoc({ summary, tags }) {
  const out = [];
  const deprecated = tags.filter((t) => t.name === 'deprecated');
  for (const t of deprecated) out.push(`**Deprecated.**${t.text ? ' ' + t.text : ''}`);
  if (summary) out.push(summary);
  for (const t of tags.filter((t) => t.name === 'remarks')) out.push(t.text);
  const params = tags.filter((t) => t.name === 'param');
  if (params.length > 0)
    out.push(
      [
        'Parameters:',
        ...params.map((t) => `- \`${t.param}\`${t.text ? ': ' + t.text.replace(/^-\s*/, '') : ''}`),
      ].join('\n'),
    );
  for (const t of tags.filter((t) => t.name === 'returns' || t.name === 'return'))
    out.push(`Returns: ${t.text}`);
  for (const t of tags.filter((t) => t.name === 'throws')) out.push(`Throws: ${t.text}`);
  for (const t of tags.filter((t) => t.name === 'default' || t.name === 'defaultValue'))
    out.push(`Default: ${t.text}`);
  for (const t of tags.filter((t) => t.name === 'see')) out.push(`See: ${t.text}`);
  for (const t of tags.filter((t) => t.name === 'example')) {
    const body = t.text.replace(/^```\w*\n([\s\S]*?)\n?```$/, '$1');
    out.push('Example:\n\n```ts\n' + body + '\n```');
  }
  const known = [
    'deprecated',
    'remarks',
    'param',
    'returns',
    'return',
    'throws',
    'default',
    'defaultValue',
    'see',
    'example',
    'internal',
  ];
  for (const t of tags.filter((t) => !known.includes(t.name)))
    out.push(`${t.name}: ${t.text}`.trim());
  return out.join('\n\n');
}

/** One line of a member's doc, for a bullet list (its summary and tags, run together). */
function renderInline(doc) {
  return renderDoc(doc)
    .replace(/\n```ts\n([\s\S]*?)\n```/g, (_, code) => '\n```ts\n' + code + '\n```')
    .split('\n')
    .map((line, i) => (i === 0 ? line : line === '' ? '' : '  ' + line))
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// Signatures

const DROP = new Set([
  ts.SyntaxKind.ExportKeyword,
  ts.SyntaxKind.DefaultKeyword,
  ts.SyntaxKind.DeclareKeyword,
  ts.SyntaxKind.AsyncKeyword, // how it is written, not what it is: the return type says Promise
]);
function modifiers(node) {
  return (node.modifiers ?? []).filter((m) => ts.isModifier(m) && !DROP.has(m.kind));
}

function isPublic(member) {
  if (member.name !== undefined && ts.isPrivateIdentifier(member.name)) return false;
  // A computed name is public API when it is a well-known symbol (`[Symbol.dispose]`); one named
  // by a module's own constant (util.inspect.custom kept in a local) is no name a reader can use.
  if (
    member.name !== undefined &&
    ts.isComputedPropertyName(member.name) &&
    !/^Symbol\.\w+$/.test(member.name.expression.getText())
  )
    return false;
  const flags = ts.getCombinedModifierFlags(member);
  return (
    (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) === 0 && !isInternal(member)
  );
}

function print(node, sourceFile) {
  return printer.printNode(ts.EmitHint.Unspecified, node, sourceFile);
}

function typeNodeOf(node) {
  return (
    node.type ??
    checker.typeToTypeNode(
      checker.getTypeAtLocation(node),
      node,
      ts.NodeBuilderFlags.NoTruncation | ts.NodeBuilderFlags.MultilineObjectLiterals,
    )
  );
}

/** A class member without its body or initializer; undefined for what the docs leave out. */
function stripMember(m) {
  const mods = modifiers(m);
  if (ts.isConstructorDeclaration(m))
    return f.updateConstructorDeclaration(m, mods, m.parameters, undefined);
  if (ts.isMethodDeclaration(m))
    return f.updateMethodDeclaration(
      m,
      mods,
      m.asteriskToken,
      m.name,
      m.questionToken,
      m.typeParameters,
      m.parameters,
      m.type,
      undefined,
    );
  if (ts.isGetAccessorDeclaration(m))
    return f.updateGetAccessorDeclaration(m, mods, m.name, m.parameters, m.type, undefined);
  if (ts.isSetAccessorDeclaration(m))
    return f.updateSetAccessorDeclaration(m, mods, m.name, m.parameters, undefined);
  if (ts.isPropertyDeclaration(m))
    return f.updatePropertyDeclaration(
      m,
      mods,
      m.name,
      m.questionToken ?? m.exclamationToken,
      typeNodeOf(m),
      undefined,
    );
  // Members merged in from an interface (a module augmentation), written as class members.
  if (ts.isMethodSignature(m))
    return f.createMethodDeclaration(
      mods,
      undefined,
      m.name,
      m.questionToken,
      m.typeParameters,
      m.parameters,
      m.type,
      undefined,
    );
  if (ts.isPropertySignature(m))
    return f.createPropertyDeclaration(mods, m.name, m.questionToken, m.type, undefined);
  if (ts.isIndexSignatureDeclaration(m)) return m;
  return undefined;
}

/** A function's overloads, or the function itself when it has none. */
function functionDeclarations(decls) {
  const fns = decls.filter(ts.isFunctionDeclaration);
  const overloads = fns.filter((d) => d.body === undefined);
  return overloads.length > 0 ? overloads : fns;
}

function memberName(m) {
  if (ts.isConstructorDeclaration(m)) return 'constructor';
  return m.name ? m.name.getText() : '';
}

// ---------------------------------------------------------------------------------------------
// Entries

/** One export: its kind, signature, doc and members. */
function entryOf(exported, sourceFileOf) {
  const symbol =
    exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const decls = (symbol.declarations ?? []).filter((d) => !isInternal(d));
  const name = exported.name;
  const at = relative(root, decls[0].getSourceFile().fileName).split('\\').join('/');
  const classes = decls.filter(ts.isClassDeclaration);
  const fns = functionDeclarations(decls);
  const interfaces = decls.filter(ts.isInterfaceDeclaration);
  const aliases = decls.filter(ts.isTypeAliasDeclaration);
  const variables = decls.filter(ts.isVariableDeclaration);
  const enums = decls.filter(ts.isEnumDeclaration);
  const signatures = [];
  const docs = [];
  const members = [];
  let kind;
  if (classes.length > 0) {
    kind = 'class';
    const cls = classes[0];
    const sf = cls.getSourceFile();
    // The class's own members, then those merged in from interfaces (module augmentations).
    const own = [...cls.members, ...interfaces.flatMap((i) => [...i.members])].filter(isPublic);
    // Each member printed with its own source file (the printer reads names from its text).
    const shape = print(
      f.createClassDeclaration(
        modifiers(cls),
        cls.name,
        cls.typeParameters,
        cls.heritageClauses,
        [],
      ),
      sf,
    );
    const lines = own.flatMap((m) => {
      const s = stripMember(m);
      return s === undefined
        ? []
        : print(s, m.getSourceFile())
            .split('\n')
            .map((l) => '    ' + l);
    });
    signatures.push([shape.replace(/\s*\}$/, ''), ...lines, '}'].join('\n'));
    docs.push(docOf(cls));
    for (const m of own) {
      const s = stripMember(m);
      if (s === undefined) continue;
      const isStatic = (ts.getCombinedModifierFlags(m) & ts.ModifierFlags.Static) !== 0;
      const callable =
        ts.isMethodDeclaration(m) || ts.isMethodSignature(m) || ts.isConstructorDeclaration(m);
      const label = ts.isConstructorDeclaration(m)
        ? `new ${name}()`
        : `${isStatic ? name : lowerFirst(name)}.${memberName(m)}${callable ? '()' : ''}`;
      members.push({ label, signature: print(s, m.getSourceFile()), doc: docOf(m) });
    }
  } else if (fns.length > 0) {
    kind = 'function';
    for (const fn of fns) {
      signatures.push(
        print(
          f.updateFunctionDeclaration(
            fn,
            modifiers(fn),
            fn.asteriskToken,
            fn.name,
            fn.typeParameters,
            fn.parameters,
            fn.type,
            undefined,
          ),
          fn.getSourceFile(),
        ),
      );
      docs.push(docOf(fn));
    }
  } else if (variables.length > 0 || enums.length > 0) {
    kind = enums.length > 0 ? 'enum' : 'constant';
    for (const v of variables) {
      const statement = v.parent.parent;
      const keyword =
        v.parent.flags & ts.NodeFlags.Const
          ? 'const'
          : v.parent.flags & ts.NodeFlags.Let
            ? 'let'
            : 'var';
      signatures.push(
        `${keyword} ${v.name.getText()}: ${print(typeNodeOf(v), v.getSourceFile())};`,
      );
      docs.push(docOf(v.parent.parent === statement ? v : v));
    }
    for (const e of enums) {
      signatures.push(
        print(f.updateEnumDeclaration(e, modifiers(e), e.name, e.members), e.getSourceFile()),
      );
      docs.push(docOf(e));
      for (const m of e.members) members.push({ label: m.name.getText(), doc: docOf(m) });
    }
  } else if (interfaces.length > 0) {
    kind = 'interface';
  } else if (aliases.length > 0) {
    kind = 'type';
  } else {
    throw new Error(`${name}: no declaration this script knows how to document (${at})`);
  }
  // Types and interfaces of the same name as a constant or class (ErrorCode) are shown with it.
  if (kind !== 'class') {
    for (const i of interfaces) {
      const kept = i.members.filter((m) => !isInternal(m));
      signatures.push(
        print(
          f.updateInterfaceDeclaration(
            i,
            modifiers(i),
            i.name,
            i.typeParameters,
            i.heritageClauses,
            kept,
          ),
          i.getSourceFile(),
        ),
      );
      docs.push(docOf(i));
      for (const m of kept)
        members.push({
          label: m.name ? m.name.getText() : print(m, i.getSourceFile()),
          doc: docOf(m),
        });
    }
    for (const a of aliases) {
      signatures.push(
        print(
          f.updateTypeAliasDeclaration(a, modifiers(a), a.name, a.typeParameters, a.type),
          a.getSourceFile(),
        ),
      );
      docs.push(docOf(a));
      if (ts.isTypeLiteralNode(a.type))
        for (const m of a.type.members)
          if (!isInternal(m))
            members.push({ label: m.name ? m.name.getText() : '', doc: docOf(m) });
    }
  }
  void sourceFileOf;
  return { name, kind, at, signatures, docs, members };
}

function lowerFirst(s) {
  return s[0].toLowerCase() + s.slice(1);
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as '-', repeats numbered. */
function anchors() {
  const seen = new Map();
  return (heading) => {
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}-${n}`;
  };
}

const byName = (a, b) =>
  a.name.toLowerCase() < b.name.toLowerCase()
    ? -1
    : a.name.toLowerCase() > b.name.toLowerCase()
      ? 1
      : a.name < b.name
        ? -1
        : a.name > b.name
          ? 1
          : 0;

function collect() {
  return MODULES.map((m) => {
    const sf = program.getSourceFile(join(root, m.file));
    if (sf === undefined) throw new Error(`${m.file} is not in the program`);
    const moduleSymbol = checker.getSymbolAtLocation(sf);
    const entries = checker
      .getExportsOfModule(moduleSymbol)
      .map((e) => entryOf(e))
      .sort(byName);
    return { ...m, entries };
  });
}

function render(modules) {
  const anchor = anchors();
  const body = [];
  const toc = [];
  anchor('pinpool API reference');
  anchor('Contents');
  for (const m of modules) {
    const title = `\`${m.name}\``;
    toc.push(`- [${title}](#${anchor(title)})`);
    body.push(
      `## ${title}`,
      '',
      `Exported by ${m.file === 'src/api.ts' ? '`src/api.ts`' : `\`${m.file}\``}: \`require('${m.name}')\` or \`import ... from '${m.name}'\`.`,
      '',
    );
    for (const [kind, heading] of KINDS) {
      const entries = m.entries.filter((e) => e.kind === kind);
      if (entries.length === 0) continue;
      const links = [];
      for (const e of entries) {
        const h = `\`${e.name}\``;
        links.push(`[${e.name}](#${anchor(h)})`);
        body.push(`### ${h}`, '', `${kind} · \`${e.at}\``, '');
        body.push('```ts', e.signatures.join('\n\n'), '```', '');
        const docs = e.docs.map(renderDoc).filter((d) => d !== '');
        for (const d of [...new Set(docs)]) body.push(d, '');
        if (e.kind === 'class') {
          for (const member of e.members) {
            const mh = `\`${member.label}\``;
            anchor(mh);
            body.push(`#### ${mh}`, '', '```ts', member.signature, '```', '');
            const d = renderDoc(member.doc);
            if (d !== '') body.push(d, '');
          }
        } else {
          const documented = e.members.filter((x) => renderDoc(x.doc) !== '');
          if (documented.length > 0) {
            body.push('Members:', '');
            for (const x of documented) body.push(`- \`${x.label}\`: ${renderInline(x.doc)}`);
            body.push('');
          }
        }
      }
      toc.push(`  - ${heading}: ${links.join(', ')}`);
    }
  }
  return [
    '# pinpool API reference',
    '',
    '<!-- Generated by scripts/api-docs.mjs (npm run docs:api) from the TSDoc in src/ and server/. Do not edit. -->',
    '',
    'Every export of `pinpool` and `pinpool/server`: its signature and its documentation. Members',
    'marked `@internal` in the sources are left out. Examples show a call in context; they are not',
    'complete programs (the README and the guides hold those, and CI runs them).',
    '',
    '## Contents',
    '',
    ...toc,
    '',
    ...body,
  ]
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/\n*$/, '\n');
}

const modules = collect();
const args = process.argv.slice(2);
if (args.includes('--undocumented')) {
  for (const m of modules)
    for (const e of m.entries)
      if (e.docs.every((d) => d.summary === ''))
        console.log(`undocumented: ${m.name} ${e.kind} ${e.name} (${e.at})`);
}
const markdown = render(modules);
if (args.includes('--check')) {
  const current = existsSync(output) ? readFileSync(output, 'utf8') : '';
  if (current !== markdown) {
    const a = current.split('\n');
    const b = markdown.split('\n');
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    console.log(
      `docs/api.md is not what scripts/api-docs.mjs writes from the sources: run \`npm run docs:api\` and commit it.\n` +
        `First difference at line ${i + 1}:\n- ${a[i] ?? '(end of file)'}\n+ ${b[i] ?? '(end of file)'}`,
    );
    process.exit(1);
  }
} else if (!args.includes('--undocumented')) {
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, markdown);
  console.log(`wrote ${relative(root, output)}`);
}
