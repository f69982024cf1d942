import { Router } from 'express';
import { z } from 'zod';
import { notFound } from '../errors.js';
import type { RuleEngine } from '../rules/rule-engine.js';
import type { RuleService } from '../rules/rule-service.js';
import { parseInput } from './validate.js';

const MAX_TRACE = 1000;
const traceBody = z.object({ size: z.number().int().min(0).max(MAX_TRACE, `must be 0..${MAX_TRACE}`) }).strict();

/** /api/rules: rule documents (hot reloaded), and their counters, errors and traces. */
export function rulesRouter(rules: RuleService, engine: RuleEngine): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.json(rules.list());
  });
  router.post('/', (req, res) => {
    const rule = rules.create(req.body);
    res.status(201).location(`/api/rules/${encodeURIComponent(rule.id)}`).json(rule);
  });
  router.get('/:id', (req, res) => {
    res.json(rules.get(req.params.id));
  });
  router.put('/:id', (req, res) => {
    res.json(rules.replace(req.params.id, req.body));
  });
  router.delete('/:id', (req, res) => {
    rules.remove(req.params.id);
    res.status(204).end();
  });
  router.get('/:id/stats', (req, res) => {
    const stats = engine.stats(req.params.id);
    if (!stats) throw notFound(`no rule "${req.params.id}"`);
    res.json(stats);
  });
  router.put('/:id/trace', (req, res) => {
    const { size } = parseInput(traceBody, req.body, 'body');
    if (!engine.setTrace(req.params.id, size)) throw notFound(`no rule "${req.params.id}"`);
    res.json({ size });
  });
  return router;
}
