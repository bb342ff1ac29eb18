// Merchant-presented QR codes made by public generators we did not write (npm), one JSON
// object a line, as qr_generators.py writes them; tests/qr_interop.rs reads both. The
// expected values are written here from each scheme's rules, not computed by Corridor.
'use strict';

const fs = require('fs');
const path = require('path');

const { anyId, billPayment, trueMoney } = require('promptparse/generate');
const PaynowQR = require('paynowqr');

function emit(pkg, network, payload, { merchant = null, acquirer = null, amount = null } = {}) {
  // The installed version (the packages do not export their package.json).
  const entry = require.resolve(pkg);
  const root = entry.slice(0, entry.lastIndexOf(`node_modules${path.sep}${pkg}`) + `node_modules/${pkg}`.length);
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  console.log(JSON.stringify({ generator: `${pkg} ${version} (npm)`, network, merchant, acquirer, amount, payload }));
}

// PromptPay credit transfer (mobile 0812223333 -> 0066812223333; a national id as written),
// bill payment (the biller id in 30.01, references in 02 and 03), and a TrueMoney wallet top-up
// (e-wallet id 14000 + the mobile number, its message in the unreserved template 81).
emit('promptparse', 'promptpay', anyId({ type: 'MSISDN', target: '0812223333' }), { merchant: '0066812223333' });
emit('promptparse', 'promptpay', anyId({ type: 'NATID', target: '1111111111111', amount: 30.0 }), {
  merchant: '1111111111111',
  amount: '30.00',
});
emit('promptparse', 'promptpay', billPayment({ billerId: '0112233445566', amount: 300.0, ref1: 'CUSTOMER001', ref2: 'INV001' }), {
  merchant: '0112233445566',
  amount: '300.00',
});
emit('promptparse', 'promptpay', trueMoney({ mobileNo: '0801111111', amount: 10.05, message: 'Hello' }), {
  merchant: '140000801111111',
  amount: '10.05',
});

// PayNow (Singapore): a company's UEN as the proxy value in 26.02.
emit('paynowqr', 'paynow', new PaynowQR({ uen: '201403121W', amount: 500, editable: true, expiry: '20991231', refNumber: 'INV-123', company: 'ACME Pte Ltd' }).output(), {
  merchant: '201403121W',
  amount: '500',
});
// Without an amount it writes 54 as "0" (and 01 as 12, dynamic).
emit('paynowqr', 'paynow', new PaynowQR({ uen: '201403121W' }).output(), { merchant: '201403121W', amount: '0' });
