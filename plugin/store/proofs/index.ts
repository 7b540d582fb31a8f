// Verification of immudb's proofs, as pure functions: every check throws VerificationError.
export { VerificationError } from './errors.js';
export { sha256, leafHash, nodeHash, LEAF_PREFIX, NODE_PREFIX, HASH_SIZE } from './hashing.js';
export { kvMetadataBytes, txMetadataBytes } from './metadata.js';
export { parseTxHeader, txInnerHash, txAlh, advanceAlh, type ParsedTxHeader, type HeaderVersion } from './tx-header.js';
export {
  entryDigest, txEntryDigest, storedKeyOf, storedValueOf, PLAIN_KEY_PREFIX, PLAIN_VALUE_PREFIX, type EntryDigestInput,
} from './entry-digest.js';
export { entriesHash, verifyEntryInclusion } from './entry-inclusion.js';
export { verifyAhtInclusion, verifyAhtConsistency, verifyAhtLastInclusion } from './ahtree.js';
export { verifyLinearProof, verifyLinearAdvanceProof } from './linear.js';
export { verifyDualProof, linearAdvanceRange, type DualProofHeaders } from './dual-proof.js';
export { verifyTxEntries, verifyListedEntries, type ExpectedEntry } from './tx-entries.js';
export {
  verifyVerifiableTx, verifyVerifiableSet, verifyVerifiableEntry, type VerifyTxOptions, type TrustedState,
} from './verifiable.js';
export { stateBytes, parseServerPublicKey, verifyStateSignature } from './signature.js';
export { TxChain, INITIAL_ALH, type ChainedTx } from './tx-chain.js';
