/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > report-success > parsed 1`] = `
Array [
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "Message-ID: 87652491",
      "Byte-Range: 1-23/23",
      "Status: 000 200 OK",
    ],
    "kind": "request",
    "method": "REPORT",
    "rawHeadBytes": 201,
    "transactionId": "dkei38sd",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > response-200 > parsed 1`] = `
Array [
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "comment": "OK",
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
    ],
    "kind": "response",
    "rawHeadBytes": 138,
    "status": 200,
    "transactionId": "a786hjs2",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > response-no-comment > parsed 1`] = `
Array [
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "comment": undefined,
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
    ],
    "kind": "response",
    "rawHeadBytes": 135,
    "status": 481,
    "transactionId": "d93kswow",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-abort > parsed 1`] = `
Array [
  Object {
    "body": "utf8:partial data that will never finish",
    "bodyBytes": 35,
    "flag": "#",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: aborted-1",
      "Byte-Range: 1-*/1000",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 209,
    "transactionId": "ab0rt123",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-binary-256 > parsed 1`] = `
Array [
  Object {
    "body": "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8NCg==",
    "bodyBytes": 514,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: bin-1",
      "Byte-Range: 1-514/514",
      "Content-Type: application/octet-stream",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 220,
    "transactionId": "b1nary00",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-body-dashes > parsed 1`] = `
Array [
  Object {
    "body": String(
      utf8:-------\\r
      -------dash5678\\r
      -------dash5678x\\r
      -------other123$\\r
      --------dash5678$ (not at line start)\\r
      end
    ),
    "bodyBytes": 104,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: dashes",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 184,
    "transactionId": "dash5678",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-empty-bind > parsed 1`] = `
Array [
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: bind-0001",
      "Byte-Range: 1-0/0",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 178,
    "transactionId": "bnd1x9a2",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-interrupted > parsed 1`] = `
Array [
  Object {
    "body": "utf8:first half of a long message ",
    "bodyBytes": 29,
    "flag": "+",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: big-1",
      "Byte-Range: 1-*/*",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 202,
    "transactionId": "tx00001a",
  },
  Object {
    "body": "utf8:hi!",
    "bodyBytes": 3,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: small-2",
      "Byte-Range: 1-3/3",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 204,
    "transactionId": "tx00002b",
  },
  Object {
    "body": "utf8:and here is the second half",
    "bodyBytes": 27,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: big-1",
      "Byte-Range: 30-56/56",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 205,
    "transactionId": "tx00003c",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-relay-paths > parsed 1`] = `
Array [
  Object {
    "body": "utf8:relay",
    "bodyBytes": 5,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://relay.example.net:2855;tcp msrps://Bob@bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://relay2.example.net:2855;tcp msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: via-relay",
      "Success-Report: yes",
      "Failure-Report: partial",
      "Byte-Range: 1-5/5",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 326,
    "transactionId": "rl4y0001",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-simple > parsed 1`] = `
Array [
  Object {
    "body": "utf8:Hey Bob, are you there?",
    "bodyBytes": 23,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: 87652491",
      "Byte-Range: 1-23/23",
      "Content-Type: text/plain",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 207,
    "transactionId": "a786hjs2",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > send-utf8-cpim > parsed 1`] = `
Array [
  Object {
    "body": String(
      utf8:From: <sip:alice@example.com>\\r
      To: <sip:bob@example.com>\\r
      DateTime: 2026-01-01T00:00:00Z\\r
      NS: imdn <urn:ietf:params:imdn>\\r
      imdn.Message-ID: u8-42\\r
      \\r
      Content-Type: text/plain;charset=UTF-8\\r
      \\r
      Grüße, señor! Ελληνικά 日本語テキスト €uro 😀🎉👩‍💻 𝄞
    ),
    "bodyBytes": 278,
    "flag": "$",
    "hasBody": true,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Message-ID: utf8-1",
      "Byte-Range: 1-*/*",
      "Content-Type: message/cpim",
    ],
    "kind": "request",
    "method": "SEND",
    "rawHeadBytes": 205,
    "transactionId": "utf8cpim",
  },
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "comment": "Très bien ✓",
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
    ],
    "kind": "response",
    "rawHeadBytes": 150,
    "status": 200,
    "transactionId": "utf8cpim",
  },
]
`

exports[`test/media/msrp/parser.test.ts > TAP > fixtures: parse, snapshot, byte-equal round trip > unknown-method > parsed 1`] = `
Array [
  Object {
    "body": "utf8:",
    "bodyBytes": 0,
    "flag": "$",
    "hasBody": false,
    "headers": Array [
      "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp",
      "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp",
      "Use-Nickname: \\"Alice\\"",
    ],
    "kind": "request",
    "method": "NICKNAME",
    "rawHeadBytes": 163,
    "transactionId": "nick0001",
  },
]
`
