// Loopback stand-ins for the two services the agent calls, so that the flood benchmark runs without the
// test environment: an IMDS that hands out node credentials and an STS that answers AssumeRole. The agent
// caches the pod's session after the first call, so neither is on the measured path.
import { createServer } from 'node:http';

const in1h = () => new Date(Date.now() + 3600_000).toISOString();

export const NODE_SECRET = 'node-secret-that-no-pod-may-see';

export async function startStandins() {
  const imds = createServer((req, res) => {
    if (req.method === 'PUT') return res.writeHead(200).end('upstream-token');
    if (req.url === '/latest/meta-data/iam/security-credentials/') return res.end('node-role');
    if (req.url === '/latest/meta-data/iam/security-credentials/node-role')
      return res.end(
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: 'ASIANODE',
          SecretAccessKey: NODE_SECRET,
          Token: 'node-token',
          Expiration: in1h(),
          LastUpdated: new Date().toISOString(),
        }),
      );
    res.writeHead(200, { 'content-type': 'text/plain' }).end('i-0123456789abcdef0');
  });
  const sts = createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      res
        .writeHead(200, { 'content-type': 'text/xml' })
        .end(
          '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>' +
            '<Credentials><AccessKeyId>ASIAPOD</AccessKeyId><SecretAccessKey>pod-secret</SecretAccessKey>' +
            `<SessionToken>pod-token</SessionToken><Expiration>${in1h()}</Expiration></Credentials>` +
            '<AssumedRoleUser><AssumedRoleId>AROA:x</AssumedRoleId>' +
            '<Arn>arn:aws:sts::123456789012:assumed-role/r/x</Arn></AssumedRoleUser></AssumeRoleResult>' +
            '<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>',
        ),
    );
  });
  const listen = (s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port)));
  const [imdsPort, stsPort] = [await listen(imds), await listen(sts)];
  return {
    imds: `http://127.0.0.1:${imdsPort}`,
    sts: `http://127.0.0.1:${stsPort}`,
    close() {
      for (const s of [imds, sts]) {
        s.closeAllConnections();
        s.close();
      }
    },
  };
}
