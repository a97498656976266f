// Internal to format/tar*.cc: the ustar header block's field offsets and widths.
#ifndef LAZYSNAP_FORMAT_TAR_FIELDS_H_
#define LAZYSNAP_FORMAT_TAR_FIELDS_H_

#include <cstddef>

namespace lazysnap {
namespace tar_fields {

constexpr size_t kBlock = 512;

// ustar field offsets and widths.
struct Field {
  size_t off, len;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChksum{148, 8}, kLinkname{157, 100}, kMagic{257, 6}, kVersion{263, 2},
    kUname{265, 32}, kGname{297, 32}, kDevmajor{329, 8}, kDevminor{337, 8}, kPrefix{345, 155};
constexpr size_t kTypeflag = 156;

}  // namespace tar_fields
}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_TAR_FIELDS_H_
