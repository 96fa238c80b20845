/** base64url without padding, for keys and signatures in JSON; works in Node and browsers alike. */
export const toBase64Url = (bytes: Uint8Array): string => {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

export const fromBase64Url = (text: string): Uint8Array => {
  const s = atob(text.replaceAll('-', '+').replaceAll('_', '/'))
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}
