import fs from 'node:fs';
import path from 'node:path';
import { conflict, invalidInput, notFound } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Db } from '../storage/database.js';
import { compileRule, type CompiledRule, type CompileOptions } from './compiler.js';
import type { RuleSinks } from './message.js';
import type { RuleEngine } from './rule-engine.js';
import type { RuleDocument } from './rule-schema.js';

export type RuleSource = { kind: 'file'; file: string } | { kind: 'api' };

export interface RuleView extends RuleDocument {
  source: 'file' | 'api';
  file?: string;
}

/**
 * Where rules come from and go to. At start: every `*.json` in the rules dir (read-only through
 * the API: edit the file and restart), then the rules created or changed through the API (kept in
 * SQLite; a rule changed through the API overrides the file of the same id). Every change is
 * compiled first: an invalid rule is refused and the running version keeps running.
 */
export class RuleService {
  private readonly sources = new Map<string, RuleSource>();
  private readonly fileRules = new Map<string, { file: string; document: unknown }>();
  private readonly statements;

  constructor(
    private readonly db: Db,
    private readonly rulesDir: string,
    private readonly engine: RuleEngine,
    private readonly sinks: RuleSinks,
    private readonly logger: Logger,
    /** The limits rules are compiled against, and where limit hits are told. */
    private readonly compileOptions: CompileOptions = {},
  ) {
    this.statements = {
      all: db.prepare('SELECT id, document FROM rules ORDER BY id'),
      upsert: db.prepare('INSERT INTO rules (id, document, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at'),
      delete: db.prepare('DELETE FROM rules WHERE id = ?'),
    };
  }

  /** Loads the rules dir and the stored rules; a rule that does not compile is logged and skipped. */
  loadAll(): { loaded: number; failed: number } {
    let loaded = 0;
    let failed = 0;
    const load = (what: string, document: unknown, source: RuleSource) => {
      try {
        const rule = this.compile(document);
        this.engine.put(rule);
        this.sources.set(rule.id, source);
        loaded++;
      } catch (err) {
        failed++;
        this.logger.error({ rule: what, err: (err as Error).message }, `rule ${what} not loaded: ${(err as Error).message}`);
      }
    };
    for (const { file, document } of this.readRulesDir()) {
      const id = (document as { id?: unknown })?.id;
      if (typeof id === 'string') this.fileRules.set(id, { file, document });
      load(file, document, { kind: 'file', file });
    }
    for (const row of this.statements.all.all() as { id: string; document: string }[]) {
      if (this.fileRules.has(row.id)) this.logger.warn({ rule: row.id }, `rule ${row.id}: the version changed through the API overrides ${this.fileRules.get(row.id)!.file}`);
      load(`"${row.id}" (stored)`, JSON.parse(row.document), { kind: 'api' });
    }
    this.logger.info({ loaded, failed, rulesDir: this.rulesDir }, `rules: ${loaded} loaded${failed > 0 ? `, ${failed} refused` : ''}`);
    return { loaded, failed };
  }

  list(): RuleView[] {
    return this.engine.rules().map((r) => this.view(r));
  }

  get(id: string): RuleView {
    const rule = this.engine.get(id);
    if (!rule) throw notFound(`no rule "${id}"`);
    return this.view(rule);
  }

  create(document: unknown): RuleView {
    const rule = this.compile(document);
    // 400, as the contract has it for POST /api/rules: the id in the document is at fault.
    if (this.engine.has(rule.id)) throw invalidInput(`rule "${rule.id}" (id): a rule with this id already exists; PUT /api/rules/${rule.id} changes it`);
    return this.store(rule);
  }

  replace(id: string, document: unknown): RuleView {
    if (!this.engine.has(id)) throw notFound(`no rule "${id}"`);
    if (document !== null && typeof document === 'object' && !Array.isArray(document)) {
      const bodyId = (document as { id?: unknown }).id;
      if (bodyId === undefined) document = { ...document, id };
      else if (bodyId !== id) throw invalidInput(`rule "${id}" (id): the body's id "${String(bodyId)}" differs from the one in the path`);
    }
    return this.store(this.compile(document));
  }

  remove(id: string): void {
    const source = this.sources.get(id);
    if (!source) throw notFound(`no rule "${id}"`);
    const file = this.fileRules.get(id);
    if (source.kind === 'file') {
      throw conflict(`rule "${id}" comes from ${source.file}: remove the file (and restart), or PUT it with "enabled": false`);
    }
    this.statements.delete.run(id);
    this.engine.remove(id);
    this.sources.delete(id);
    if (file) {
      // The API version overrode a file: the file's version comes back.
      this.engine.put(this.compile(file.document));
      this.sources.set(id, { kind: 'file', file: file.file });
    }
  }

  private store(rule: CompiledRule): RuleView {
    this.statements.upsert.run(rule.id, JSON.stringify(rule.document), Date.now());
    this.engine.put(rule);
    this.sources.set(rule.id, { kind: 'api' });
    return this.view(rule);
  }

  private compile(document: unknown): CompiledRule {
    return compileRule(document, this.sinks, this.compileOptions);
  }

  private view(rule: CompiledRule): RuleView {
    const source = this.sources.get(rule.id) ?? { kind: 'api' };
    return { ...rule.document, source: source.kind, ...(source.kind === 'file' ? { file: source.file } : {}) };
  }

  private readRulesDir(): { file: string; document: unknown }[] {
    if (!fs.existsSync(this.rulesDir)) return [];
    const out: { file: string; document: unknown }[] = [];
    for (const name of fs.readdirSync(this.rulesDir).sort()) {
      if (!name.endsWith('.json') || name === 'schema.json') continue;
      const file = path.join(path.basename(this.rulesDir), name);
      try {
        out.push({ file, document: JSON.parse(fs.readFileSync(path.join(this.rulesDir, name), 'utf8')) });
      } catch (err) {
        this.logger.error({ file, err: (err as Error).message }, `rule file ${file} is not valid JSON: ${(err as Error).message}`);
      }
    }
    return out;
  }
}

