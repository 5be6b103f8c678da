"use strict";
// A store-only ZIP writer (no compression: the images are JPEGs already). PKWARE APPNOTE 6.3:
// a local header and the data per file, then the central directory and its end record.
// ReenactZip.build([{name, bytes: Uint8Array}], date) -> Blob of type application/zip.
const ReenactZip = (() => {
  const CRC_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  // MS-DOS time and date fields (local time, two-second resolution, years from 1980)
  function dosDateTime(date) {
    const time = (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1);
    const day = ((Math.max(date.getFullYear(), 1980) - 1980) << 9) |
      ((date.getMonth() + 1) << 5) | date.getDate();
    return { time, day };
  }

  const UTF8_NAMES = 0x0800; // general purpose flag bit 11: names are UTF-8
  const VERSION = 20; // 2.0: stored entries

  function localHeader(entry, stamp) {
    const view = new DataView(new ArrayBuffer(30));
    view.setUint32(0, 0x04034b50, true);
    view.setUint16(4, VERSION, true);
    view.setUint16(6, UTF8_NAMES, true);
    view.setUint16(8, 0, true); // method 0: stored
    view.setUint16(10, stamp.time, true);
    view.setUint16(12, stamp.day, true);
    view.setUint32(14, entry.crc, true);
    view.setUint32(18, entry.size, true); // compressed size = size
    view.setUint32(22, entry.size, true);
    view.setUint16(26, entry.name.length, true);
    view.setUint16(28, 0, true); // no extra field
    return view;
  }

  function centralHeader(entry, stamp) {
    const view = new DataView(new ArrayBuffer(46));
    view.setUint32(0, 0x02014b50, true);
    view.setUint16(4, VERSION, true); // made by
    view.setUint16(6, VERSION, true); // needed
    view.setUint16(8, UTF8_NAMES, true);
    view.setUint16(10, 0, true);
    view.setUint16(12, stamp.time, true);
    view.setUint16(14, stamp.day, true);
    view.setUint32(16, entry.crc, true);
    view.setUint32(20, entry.size, true);
    view.setUint32(24, entry.size, true);
    view.setUint16(28, entry.name.length, true);
    // extra, comment, disk number, internal and external attributes: 0
    view.setUint32(42, entry.offset, true);
    return view;
  }

  function endRecord(count, size, offset) {
    const view = new DataView(new ArrayBuffer(22));
    view.setUint32(0, 0x06054b50, true);
    view.setUint16(8, count, true);
    view.setUint16(10, count, true);
    view.setUint32(12, size, true);
    view.setUint32(16, offset, true);
    return view;
  }

  function build(files, date = new Date()) {
    const encoder = new TextEncoder();
    const stamp = dosDateTime(date);
    const parts = [];
    const central = [];
    let offset = 0;
    let centralSize = 0;
    for (const file of files) {
      const entry = {
        name: encoder.encode(file.name),
        crc: crc32(file.bytes),
        size: file.bytes.length,
        offset,
      };
      parts.push(localHeader(entry, stamp), entry.name, file.bytes);
      central.push(centralHeader(entry, stamp), entry.name);
      offset += 30 + entry.name.length + entry.size;
      centralSize += 46 + entry.name.length;
    }
    const end = endRecord(files.length, centralSize, offset);
    return new Blob([...parts, ...central, end], { type: "application/zip" });
  }

  return { build, crc32 };
})();
