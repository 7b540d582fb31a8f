// plugin/store/proofs/index.ts with the one-pass verifyVerifiableSet (a local export shadows the
// star re-export of the same name).
export * from '../../plugin/store/proofs/index.js';
export { verifyVerifiableSet } from './verify-set-fast.js';
