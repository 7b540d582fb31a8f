// The evidence commands: `checkpoint` (the verified state as a signed note), `bundle` (entries
// with every proof needed to check them offline) and `verify-bundle` (that check, with no immudb
// access), and the `--checkpoint` check of `verify --all`. Formats: docs/evidence-bundle.md,
// docs/verification.md ("Checkpoints"); decisions #28-29.
import { InvalidArgumentError, type Command } from 'commander';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { parseServerPublicKey } from '../store/proofs/index.js';
import type { AuditReader } from '../reader/audit-reader.js';
import { addFilters, conditionOf, withIndex, type KeyOptions, type WorkbenchContext } from '../workbench/commands.js';
import type { FilterOptions } from '../workbench/filters.js';
import { parseBundle, verifyBundle, type BundleVerification, type EvidenceBundleV1 } from './bundle-verify.js';
import {
  parseCheckpoint, readEd25519PrivateKey, readEd25519PublicKey, signaturesSummary, signCheckpoint, uncheckedSignatures, verifyCheckpointSignatures,
  type CheckpointSignatures, type ParsedCheckpoint,
} from './checkpoint-note.js';
import { checkpointOf, collectBundle, proveCurrentState, proveExtends } from './collect.js';

export interface EvidenceContext extends WorkbenchContext {
  /** PEM of immudb's state signing key (--server-public-key), if configured. */
  serverPublicKey(): string | undefined;
}

/** Default key name of the auditor's checkpoint signature (a C2SP key name: no spaces, no '+'). */
export const DEFAULT_SIGNER_NAME = 'kong-immudb-audit/auditor';
/** Entries a filtered bundle holds at most unless --limit says otherwise. */
export const DEFAULT_BUNDLE_LIMIT = 100;

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function usageKey<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function readCheckpointFile(file: string): ParsedCheckpoint & { note: string } {
  const note = readText(file, 'checkpoint');
  return { ...parseCheckpoint(note, `checkpoint ${file}`), note };
}

/** Writes FILE.partial, then renames it: a reader never sees half a file. */
function writeWhole(file: string, text: string): void {
  writeFileSync(`${file}.partial`, text, { mode: 0o644 });
  renameSync(`${file}.partial`, file);
}

/** The auditor key that checks a checkpoint's note signature (verify --all, verify-bundle). */
export interface AuditorKeyOptions {
  auditorPublicKey?: string;
  auditorName: string;
}

export function addAuditorKeyOptions(cmd: Command): Command {
  return cmd
    .option('--auditor-public-key <file>', "the auditor's Ed25519 public key (PEM, of checkpoint --signing-key): the checkpoint must carry its valid signature (exit 3 otherwise); without it a signature line is reported as NOT checked")
    .option('--auditor-name <name>', 'key name of that signature (checkpoint --signer-name)', DEFAULT_SIGNER_NAME);
}

function readAuditorKey(o: AuditorKeyOptions): { name: string; key: KeyObject } | undefined {
  const file = o.auditorPublicKey;
  return file ? { name: o.auditorName, key: usageKey(() => readEd25519PublicKey(readText(file, 'auditor public key'), file)) } : undefined;
}

export interface CheckpointCheck {
  /** Text lines for the command's output. */
  lines: string[];
  /** Signatures the note carries that nothing checked; the command prints it as a WARNING. */
  warning?: string;
  /** Fields for the command's --json output. */
  json: Record<string, unknown>;
}

/**
 * `verify --all --checkpoint FILE [--auditor-public-key KEY]`: reads the note and checks its
 * signatures now (a bad key, note or signature fails before the walk); `prove`, after the walk,
 * has the server prove that its current state extends the checkpoint.
 */
export function openCheckpoint(o: AuditorKeyOptions & { checkpoint?: string }, serverPublicKey: string | undefined): { prove(reader: AuditReader): Promise<CheckpointCheck> } | undefined {
  const checked = readCheckedCheckpoint(o, serverPublicKey);
  if (!checked) return undefined;
  const { file, checkpoint: c, signatures, warning } = checked;
  return {
    async prove(reader) {
      const state = await proveCurrentState(reader);
      await proveExtends(reader, c, state);
      return {
        lines: [
          `checkpoint ${file}: the log only grew since (tx ${c.txId}, taken ${c.time}, is extended by tx ${state.txId})`,
          `  checkpoint signatures: ${signaturesSummary(signatures, '--server-public-key', o.auditorName)}`,
        ],
        ...(warning ? { warning } : {}),
        json: { checkpoint_file: file, checkpoint_tx: c.txId, checkpoint_extended_to: state.txId, checkpoint_signatures: signaturesJson(signatures) },
      };
    },
  };
}

/**
 * `--checkpoint FILE [--auditor-public-key KEY]` of verify --all and bundle: the note read and its
 * signature lines checked with the keys given (an EvidenceError when one fails); `warning` names
 * the lines no key checked. Undefined without --checkpoint (then an auditor key is a usage error).
 */
function readCheckedCheckpoint(o: AuditorKeyOptions & { checkpoint?: string }, serverPublicKey: string | undefined) {
  const file = o.checkpoint;
  if (file === undefined) {
    if (o.auditorPublicKey !== undefined) throw new InvalidArgumentError('--auditor-public-key goes with --checkpoint');
    return undefined;
  }
  const checkpoint = readCheckpointFile(file);
  const signatures = verifyCheckpointSignatures(checkpoint, { serverKey: serverPublicKey ? parseServerPublicKey(serverPublicKey) : undefined, auditor: readAuditorKey(o) }, `checkpoint ${file}`);
  const unchecked = uncheckedSignatures(signatures, '--server-public-key');
  return { file, checkpoint, signatures, warning: unchecked ? `checkpoint ${file}: ${unchecked}` : undefined };
}

function signaturesJson(s: CheckpointSignatures) {
  return { immudb: s.immudb, auditor: s.auditor, unchecked_signers: s.unchecked };
}

export function registerEvidence(program: Command, ctx: EvidenceContext): void {
  program
    .command('checkpoint')
    .description("the log's current state, proven against this auditor's trusted state, as a signed note (origin, tx, Alh, time, server, database, immudb's state signature; with --signing-key also the auditor's Ed25519 signature). Keep them: verify --all --checkpoint proves the log only grew since")
    .option('-o, --output <file>', 'write the note to this file (default: stdout)')
    .option('--signing-key <file>', "the auditor's Ed25519 private key (PEM, openssl genpkey -algorithm ed25519): add a C2SP note signature")
    .option('--signer-name <name>', 'key name of that signature', DEFAULT_SIGNER_NAME)
    .action(async (o: { output?: string; signingKey?: string; signerName: string }) => {
      const g = ctx.globals();
      const key = o.signingKey ? usageKey(() => readEd25519PrivateKey(readText(o.signingKey!, 'signing key'), o.signingKey!)) : undefined;
      const state = await ctx.withReader((reader) => proveCurrentState(reader));
      const note = usageKey(() => signCheckpoint(checkpointOf(state), key ? { name: o.signerName, key } : undefined));
      const summary = `checkpoint: tx ${state.txId} of database ${state.database} on server ${state.serverUuid}, Alh ${state.alh.toString('hex')}` +
        `${state.signature ? ', signed by immudb' : ', not signed by immudb (the server has no --signingKey)'}${key ? `, signed by ${o.signerName}` : ''}`;
      if (o.output) writeWhole(o.output, note);
      if (g.json) {
        process.stdout.write(JSON.stringify({ file: o.output ?? null, tx: state.txId, alh: state.alh.toString('hex'), server_uuid: state.serverUuid, database: state.database, immudb_signed: state.signature !== null, auditor_signed: Boolean(key), note }) + '\n');
      } else if (o.output) {
        process.stdout.write(`${summary}; written to ${o.output}\n`);
      } else {
        process.stdout.write(note);
        process.stderr.write(`${summary}\n`);
      }
    });

  const bundleCmd = addFilters(
    program
      .command('bundle')
      .description("an evidence bundle: the given entries (audit ids and/or the search filters) with their tx headers, inclusion proofs and dual proofs to one state of the log immudb signed, that signature and its key's fingerprint, and with --checkpoint the proof that the state extends it; verify-bundle checks it offline")
      .argument('[audit-id...]', 'audit ids (UUID)'),
  )
    .option('-o, --output <file>', 'write the bundle to this file (default: stdout)')
    .option('--checkpoint <file>', 'also prove that the state extends this checkpoint (immudb-audit checkpoint); its signatures are checked like verify --all --checkpoint checks them');
  addAuditorKeyOptions(bundleCmd)
    .action(async (ids: string[], o: FilterOptions & KeyOptions & AuditorKeyOptions & { limit?: number; output?: string; checkpoint?: string }) => {
      const g = ctx.globals();
      const { output, checkpoint: _checkpoint, limit, auditorPublicKey: _key, auditorName: _name, ...filters } = o;
      const filtered = Object.entries(filters).some(([k, v]) => v !== undefined && k !== 'pseudonymKeyFile' && k !== 'pseudonymKeyId');
      if (!ids.length && !filtered) throw new InvalidArgumentError('give audit ids, search filters (e.g. --status 403 --since 24h), or both');
      // Checked before any work, as verify --all --checkpoint does: a bundle names the checkpoint it extends.
      const serverPem = ctx.serverPublicKey();
      const checked = readCheckedCheckpoint(o, serverPem);
      const checkpoint = checked?.checkpoint;
      const all = [...ids];
      if (filtered) {
        const cond = conditionOf(o);
        const max = limit ?? DEFAULT_BUNDLE_LIMIT;
        const rows = await withIndex(ctx, async (index) => {
          const found = [...index.query(cond, max + 1)];
          if (found.length > max) throw new InvalidArgumentError(`${index.count(cond)} entries match the filters, more than --limit ${max}: narrow the filters or raise --limit (a bundle is never cut short)`);
          return found;
        });
        all.push(...rows.map((r) => r.audit_id));
      }
      if (!all.length) throw new InvalidArgumentError('no entries match the filters: nothing to bundle');
      const bundle = await ctx.withReader((reader) => collectBundle(reader, { ids: all, prefix: g.prefix, checkpoint, serverPublicKey: serverPem, createdBy: `kong-immudb-audit ${ctx.productVersion}` }));
      const text = JSON.stringify(bundle, null, 1) + '\n';
      // What is written must verify offline as it stands.
      verifyBundle(parseBundle(text), { publicKeyPem: serverPem, checkpointNote: checkpoint?.note });
      const summary = `bundle: ${bundle.entries.length} ${bundle.entries.length === 1 ? 'entry' : 'entries'} of database ${bundle.database} proven against tx ${bundle.state.tx_id} on server ${bundle.server_uuid}` +
        `${bundle.state.signature ? `, state signed by immudb (key ${bundle.state.public_key_fingerprint}${bundle.state.public_key_pinned ? '' : ', not pinned: no --server-public-key'})` : ', state not signed (the server has no --signingKey)'}` +
        `${checkpoint ? `, extends checkpoint tx ${checkpoint.txId}` : ''}`;
      if (output) {
        writeWhole(output, text);
        process.stdout.write(g.json ? JSON.stringify({
          bundle: output, entries: bundle.entries.length, state_tx: bundle.state.tx_id, signed: bundle.state.signature !== null, fingerprint: bundle.state.public_key_fingerprint,
          ...(checked ? { checkpoint_signatures: signaturesJson(checked.signatures) } : {}),
        }) + '\n' : `${summary}; written to ${output}\n`);
      } else {
        process.stdout.write(text);
        process.stderr.write(`${summary}\n`);
      }
      if (checked?.warning) process.stderr.write(`immudb-audit: WARNING: ${checked.warning}\n`);
    });

  const verifyBundleCmd = program
    .command('verify-bundle')
    .description('check an evidence bundle offline (no immudb access): every entry included in its tx, every tx linked to the signed state, the signature, and the checkpoint; exit 3 naming the part that fails')
    .argument('<file>', 'the bundle (immudb-audit bundle -o FILE)')
    .option('--public-key <file>', "immudb's state signing public key (PEM): the state must be signed by it, and each checkpoint's immudb-signature line (default: --server-public-key)")
    .option('--checkpoint <file>', "a checkpoint you hold: the bundle must prove that its state extends it (its signatures are checked like the bundle's checkpoint's)");
  addAuditorKeyOptions(verifyBundleCmd)
    .action((file: string, o: AuditorKeyOptions & { publicKey?: string; checkpoint?: string }) => {
      const g = ctx.globals();
      const pem = o.publicKey ? readText(o.publicKey, 'public key') : ctx.serverPublicKey();
      if (pem) usageKey(() => parseServerPublicKey(pem));
      const auditor = readAuditorKey(o);
      const checkpointNote = o.checkpoint ? readText(o.checkpoint, 'checkpoint') : undefined;
      const text = readText(file, 'bundle');
      const b = parseBundle(text);
      const r = verifyBundle(b, { publicKeyPem: pem, checkpointNote, auditor });
      print(g.json, r, b, o.auditorName);
      for (const [part, s] of Object.entries(r.checkpointSignatures)) {
        const unchecked = uncheckedSignatures(s, '--public-key');
        if (unchecked) process.stderr.write(`immudb-audit: WARNING: ${part}: ${unchecked}\n`);
      }
    });
}

function print(json: boolean | undefined, r: BundleVerification, b: EvidenceBundleV1, auditorName: string): void {
  if (json) {
    process.stdout.write(JSON.stringify({
      verified: true, server_uuid: r.serverUuid, database: r.database, state: { tx: r.state.txId, alh: r.state.alh },
      signature: r.signature, fingerprint: r.fingerprint, checkpoint: r.checkpoint,
      checkpoint_signatures: Object.fromEntries(Object.entries(r.checkpointSignatures).map(([part, s]) => [part, signaturesJson(s)])),
      entries: r.entries.map((e) => ({ audit_id: e.auditId, tx: e.txId })),
    }) + '\n');
    return;
  }
  const sig = {
    pinned: `valid, made with the given public key (${r.fingerprint})`,
    unpinned: `valid under the key the bundle carries (${r.fingerprint}), which nothing here pins: give --public-key with immudb's key to check it is the server's`,
    absent: 'none (the server does not sign its states): the bundle shows internal consistency only, anchor it with a checkpoint you hold',
  }[r.signature];
  const lines = [
    `bundle verified: ${r.entries.length} ${r.entries.length === 1 ? 'entry' : 'entries'} of database ${r.database} (server ${r.serverUuid}), each included in its transaction, linked to the state tx ${r.state.txId} (Alh ${r.state.alh})`,
    `  state signature: ${sig}`,
    `  checkpoint: ${r.checkpoint ? `the state extends the checkpoint of tx ${r.checkpoint.txId} (taken ${r.checkpoint.time}); its signatures: ${signaturesSummary(r.checkpointSignatures['checkpoint.note']!, '--public-key', auditorName)}` : 'none in the bundle'}`,
  ];
  const given = r.checkpointSignatures['--checkpoint'];
  if (given && !r.checkpoint) lines.push(`  --checkpoint: the state itself; its signatures: ${signaturesSummary(given, '--public-key', auditorName)}`);
  b.entries.forEach((e, i) => {
    const v = e.entry as { time?: string; what?: { method?: string; path?: string }; outcome?: { status?: number } } | null;
    lines.push(`  ${e.audit_id}  tx ${r.entries[i]!.txId}  ${v?.time ?? ''}  ${v?.what?.method ?? '-'} ${v?.what?.path ?? '-'} -> ${v?.outcome?.status ?? '-'}`);
  });
  process.stdout.write(lines.join('\n') + '\n');
}
