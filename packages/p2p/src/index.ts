/**
 * @chorus/p2p: Chorus peers over libp2p.
 */
export {
  documentKey,
  invite,
  issueCredential,
  MAX_INVITE_DEPTH,
  parseMembership,
  verifyCredential,
  type Credential,
  type CredentialFields,
  type Membership,
  type Verdict,
  type VerifyOptions,
} from './membership.ts'
export { ephemeralPeerKey, loadOrCreatePeerKey, peerKeyFromSeed, peerKeyOf, type PeerKey } from './peer-key.ts'
export { ChorusPeer, RELAY_LIMITS, type ChorusPeerOptions } from './chorus-peer.ts'
export {
  DocumentTransport,
  HANDSHAKE_MS,
  MAX_GOSSIP_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_QUEUED_BYTES,
  RESYNC_MS,
  DIAL_GRACE_MS,
  SYNC_PROTOCOL,
  type DocumentTransportOptions,
  type DocumentTransportStats,
} from './document-transport.ts'
export { documentSecrets, type DocumentSecrets } from './document-secrets.ts'
export { LEASE_PROTOCOL, LEASE_STREAM_LIMITS, libp2pLeaseChannel, peerLeaseClient, type PeerLeaseClientOptions, type RelayPeer } from './lease-channel.ts'
export { FramedStream, type FramedStreamOptions } from './framed-stream.ts'
export { openMeshSpace, type MeshSpace, type MeshSpaceOptions } from './mesh-space.ts'
export { readKeyFile, writeKeyFile } from './key-file.ts'
