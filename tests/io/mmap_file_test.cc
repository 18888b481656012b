#include "io/mmap_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "core/error.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

// Substring check that prints the whole message on failure.
#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = test::temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  return path;
}

TEST(MmapFile, MapsContents) {
  std::string content;
  for (int i = 0; i < 10000; ++i) content += static_cast<char>(i * 7 + 3);
  const std::string path = write_temp("contents.bin", content);
  auto file = MmapFile::open(path);
  ASSERT_EQ(file->size(), content.size());
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(std::memcmp(file->data(), content.data(), content.size()), 0);
}

TEST(MmapFile, EmptyFileHasSizeZero) {
  const std::string path = write_temp("empty.bin", "");
  auto file = MmapFile::open(path);
  EXPECT_EQ(file->size(), 0u);
}

TEST(MmapFile, MappingOutlivesFileRemoval) {
  const std::string path = write_temp("removed.bin", "hello mapping");
  auto file = MmapFile::open(path);
  std::remove(path.c_str());
  ASSERT_EQ(file->size(), 13u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), file->size()),
            "hello mapping");
}

TEST(MmapFile, MissingFileIsIoErrorNamingPathAndReason) {
  const std::string path = test::temp_dir() + "/does-not-exist.gguf";
  try {
    MmapFile::open(path);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kIo);
    EXPECT_CONTAINS(e.message(), path);
    EXPECT_CONTAINS(e.message(), std::strerror(ENOENT));
  }
}

TEST(MmapFile, DirectoryIsIoError) {
  const std::string path = test::temp_dir();
  try {
    MmapFile::open(path);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kIo);
    EXPECT_CONTAINS(e.message(), path);
  }
}

}  // namespace
}  // namespace llmos
