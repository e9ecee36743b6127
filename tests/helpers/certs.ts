/**
 * Throw-away certificates made with openssl for the security tests: a CA, a server certificate
 * for localhost and 127.0.0.1, a client certificate (mutual TLS), and a second CA that trusts
 * nothing of the first. All PEM files in one temporary directory.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { $ } from "bun";

export interface TestCerts {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed none of the above. */
  otherCaFile: string;
  otherClientCert: string;
  otherClientKey: string;
}

async function leaf(dir: string, name: string, ca: string, subject: string, ext: string): Promise<void> {
  await $`openssl req -newkey rsa:2048 -nodes -keyout ${dir}/${name}.key -out ${dir}/${name}.csr -subj ${subject}`.quiet();
  writeFileSync(`${dir}/${name}.ext`, ext);
  await $`openssl x509 -req -in ${dir}/${name}.csr -CA ${dir}/${ca}.pem -CAkey ${dir}/${ca}.key -CAcreateserial -out ${dir}/${name}.pem -days 2 -extfile ${dir}/${name}.ext`.quiet();
}

/** Makes the certificates (about a second of openssl). */
export async function makeCerts(): Promise<TestCerts> {
  const dir = mkdtempSync(`${tmpdir()}/pm-certs-`);
  for (const ca of ["ca", "other"]) await $`openssl req -x509 -newkey rsa:2048 -nodes -keyout ${dir}/${ca}.key -out ${dir}/${ca}.pem -days 2 -subj /CN=ProberMesh-test-${ca}`.quiet();
  await leaf(dir, "server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await leaf(dir, "client", "ca", "/CN=agent", "extendedKeyUsage=clientAuth\n");
  await leaf(dir, "otherclient", "other", "/CN=stranger", "extendedKeyUsage=clientAuth\n");
  return {
    dir, caFile: `${dir}/ca.pem`, serverCert: `${dir}/server.pem`, serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`, clientKey: `${dir}/client.key`, otherCaFile: `${dir}/other.pem`,
    otherClientCert: `${dir}/otherclient.pem`, otherClientKey: `${dir}/otherclient.key`,
  };
}
