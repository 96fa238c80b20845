/**
 * The Transport acceptance suite for the libp2p DocumentTransport: three real ChorusPeers on loopback TCP
 * (discovery off), members of one document by relay-signed credentials, dialled into a full mesh so each
 * transport has a direct link to the other two once started.
 */
import { runTransportTests } from '@chorus/sync/testing/suites'
import { ChorusPeer, ephemeralPeerKey } from '@chorus/p2p'
import { DOC, membership, tcpAddress } from './p2p-helpers.ts'

runTransportTests('libp2p DocumentTransport over loopback TCP', async () => {
  const peers: ChorusPeer[] = []
  try {
    for (let i = 0; i < 3; i++) {
      peers.push(await ChorusPeer.start({ key: await ephemeralPeerKey(), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, pubsubDiscovery: false }))
    }
    const [a, b, c] = peers
    if (a === undefined || b === undefined || c === undefined) throw new Error('unreachable')
    await a.dial(tcpAddress(b))
    await a.dial(tcpAddress(c))
    await b.dial(tcpAddress(c))
    const transport = (peer: ChorusPeer): ReturnType<ChorusPeer['document']> => peer.document(membership(DOC, peer.peerId))
    return {
      a: transport(a),
      b: transport(b),
      c: transport(c),
      teardown: async () => {
        await Promise.all(peers.map((p) => p.stop()))
      },
    }
  } catch (error) {
    await Promise.all(peers.map((p) => p.stop()))
    throw error
  }
})
