// verify.html: the verify report's Markdown (headings, a table, fenced blocks, paragraphs) as HTML. Pure.
const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function markdownToHtml(md: string, title: string): string {
  // the Markdown is simple (headings, a table, fenced blocks, paragraphs): render just that
  const out: string[] = [];
  let inFence = false;
  let inTable = false;
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) {
      out.push(inFence ? '</pre>' : '<pre>');
      inFence = !inFence;
      continue;
    }
    if (inFence) {
      out.push(esc(line));
      continue;
    }
    if (line.startsWith('|')) {
      if (/^\|[-| ]+\|$/.test(line)) continue;
      const cells = line.split('|').slice(1, -1).map((c) => esc(c.trim()).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>'));
      out.push(`${inTable ? '' : '<table>'}<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`);
      inTable = true;
      continue;
    }
    if (inTable) {
      out.push('</table>');
      inTable = false;
    }
    const h = /^(#{2,3}) (.*)$/.exec(line);
    if (h) out.push(`<h${h[1]!.length}>${esc(h[2]!)}</h${h[1]!.length}>`);
    else if (line.trim()) out.push(`<p>${esc(line).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>')}</p>`);
  }
  if (inTable) out.push('</table>');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:.5em;overflow:auto}table{border-collapse:collapse}td{border:1px solid #999;padding:.2em .6em}</style></head><body>\n${out.join('\n')}\n</body></html>\n`;
}
