#!/usr/bin/env python3
"""`make docs`: every relative link in README.md and docs/*.md points at a file
that exists, and each #anchor at a heading there (GitHub's slug rules, with
-1, -2 for repeats)."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
def slug(text):
    text = re.sub(r'`', '', text)
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = text.strip().lower()
    out = []
    for ch in text:
        if ch.isalnum() or ch in '-_' or ch == ' ':
            out.append(ch)
    return ''.join(out).replace(' ', '-')
def anchors(path):
    seen = {}; result = set(); fence = False
    for line in open(path, encoding='utf-8'):
        if line.startswith('```'):
            fence = not fence; continue
        if fence: continue
        m = re.match(r'^(#{1,6})\s+(.*?)\s*#*\s*$', line)
        if not m: continue
        s = slug(m.group(2))
        n = seen.get(s, 0)
        result.add(s if n == 0 else f'{s}-{n}')
        seen[s] = n + 1
    return result
files = ['README.md'] + sorted('docs/' + f for f in os.listdir(os.path.join(root, 'docs')) if f.endswith('.md'))
bad = 0; checked = 0
for f in files:
    path = os.path.join(root, f)
    fence = False
    for no, line in enumerate(open(path, encoding='utf-8'), 1):
        if line.startswith('```'):
            fence = not fence; continue
        if fence: continue
        line = re.sub(r'`[^`]*`', '', line)
        for target in re.findall(r'\]\(([^)\s]+)\)', line):
            if re.match(r'^[a-z]+:', target): continue
            checked += 1
            file_part, _, anchor = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(f), file_part)) if file_part else f
            dpath = os.path.join(root, dest)
            if not os.path.exists(dpath):
                print(f'{f}:{no}: {target}: no such file {dest}'); bad += 1; continue
            if anchor:
                if os.path.isdir(dpath) or not dest.endswith('.md'):
                    print(f'{f}:{no}: {target}: anchor on a non-markdown target'); bad += 1; continue
                if anchor not in anchors(dpath):
                    print(f'{f}:{no}: {target}: no heading #{anchor} in {dest}'); bad += 1
print(f'docs: {checked} relative links checked in {len(files)} files, {bad} broken')
sys.exit(1 if bad else 0)
