/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/media/msrp/uri.test.ts > TAP > parse and format round trip > parsed URIs 1`] = `
Array [
  Object {
    "host": "alice.example.com",
    "params": Array [],
    "port": 7777,
    "scheme": "msrp",
    "sessionId": "iau39soe2843z",
    "transport": "tcp",
  },
  Object {
    "host": "bob.example.com",
    "params": Array [],
    "port": 8888,
    "scheme": "msrps",
    "sessionId": "9di4eae923wzd",
    "transport": "tcp",
    "user": "Bob",
  },
  Object {
    "host": "relay.example.net",
    "params": Array [],
    "port": 2855,
    "scheme": "msrp",
    "transport": "tcp",
  },
  Object {
    "host": "2001:db8::1",
    "params": Array [],
    "port": 2855,
    "scheme": "msrp",
    "sessionId": "s1",
    "transport": "tcp",
  },
  Object {
    "host": "127.0.0.1",
    "params": Array [
      Object {
        "name": "foo",
        "value": "bar",
      },
      Object {
        "name": "flag",
      },
    ],
    "port": 7654,
    "scheme": "msrp",
    "sessionId": "s1a2b3",
    "transport": "tcp",
  },
  Object {
    "host": "Host.Example.COM",
    "params": Array [],
    "port": 1,
    "scheme": "msrp",
    "sessionId": "AbC/d+e=",
    "transport": "TCP",
  },
]
`
