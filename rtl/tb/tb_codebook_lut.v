// tb_codebook_lut: loads every codebook of a `nuq export --word-bits 64` directory (+mem)
// into nuq_codebook_lut through its write port, one level per cycle as the sequencer does,
// and reads every entry back through all P ports (each port a different index). Without
// +mem it loads a random table.
`timescale 1ns/1ps
module tb_codebook_lut;
    localparam P = 16;
    reg clk = 0;
    always #5 clk = ~clk;
    reg           we;
    reg  [7:0]    waddr, wdata;
    reg  [P*8-1:0] raddr;
    wire [P*8-1:0] rdata;
    nuq_codebook_lut #(.P(P)) dut (.clk(clk), .we(we), .waddr(waddr), .wdata(wdata), .raddr(raddr), .rdata(rdata));

    reg [7:0] levels [0:16383];
    reg [7:0] ref_t [0:255];
    reg [31:0] desc [0:4095];
    reg [8*1024-1:0] memdir, fname;
    integer errors, checks, seed, k, p, cb, nlev, size, li, nl, base, bits, start_k;
    task check_table;
        input integer entries;
        begin
            for (start_k = 0; start_k < entries; start_k = start_k + 1) begin
                for (p = 0; p < P; p = p + 1) raddr[8*p +: 8] = (start_k + 7 * p) % entries;
                #1;
                for (p = 0; p < P; p = p + 1) begin
                    checks = checks + 1;
                    if (rdata[8*p +: 8] !== ref_t[(start_k + 7 * p) % entries]) begin
                        errors = errors + 1;
                        if (errors < 5) $display("FAIL port %0d index %0d: got %0d expected %0d", p,
                            (start_k + 7 * p) % entries, rdata[8*p +: 8], ref_t[(start_k + 7 * p) % entries]);
                    end
                end
            end
        end
    endtask
    task load_table;
        input integer entries;
        begin
            we = 1;
            for (k = 0; k < entries; k = k + 1) begin
                waddr = k; wdata = ref_t[k];
                @(posedge clk); #1;
            end
            we = 0;
        end
    endtask
    initial begin
        errors = 0; checks = 0; seed = 3; we = 0; raddr = 0;
        for (k = 0; k < 256; k = k + 1) ref_t[k] = $random(seed);
        load_table(256);
        check_table(256);
        if ($value$plusargs("mem=%s", memdir)) begin
            // every layer's weight codebook and output codebook, via the descriptors
            $sformat(fname, "%0s/seq_layers.mem", memdir);
            $readmemh(fname, desc);
            $sformat(fname, "%0s/seq_levels.mem", memdir);
            $readmemh(fname, levels);
            nl = desc[2];
            cb = 0;
            for (li = 0; li < nl; li = li + 1) begin
                // weight codebook (conv, linear): 2^wbits entries
                if (desc[32 * (li + 1)] == 2 || desc[32 * (li + 1)] == 3) begin
                    bits = desc[32 * (li + 1) + 1];
                    base = desc[32 * (li + 1) + 23];
                    for (k = 0; k < (1 << bits); k = k + 1) ref_t[k] = levels[base + k];
                    load_table(1 << bits);
                    check_table(1 << bits);
                    cb = cb + 1;
                end
                // output codebook: 2^act_bits entries
                if (desc[32 * (li + 1) + 27] != 32'hFFFFFFFF && desc[32 * (li + 1) + 2] != 0) begin
                    bits = desc[32 * (li + 1) + 2];
                    base = desc[32 * (li + 1) + 27];
                    for (k = 0; k < (1 << bits); k = k + 1) ref_t[k] = levels[base + k];
                    load_table(1 << bits);
                    check_table(1 << bits);
                    cb = cb + 1;
                end
            end
            if (cb == 0) begin
                errors = errors + 1;
                $display("FAIL +mem given but no codebooks found in %0s", memdir);
            end
        end
        if (errors == 0) $display("PASS tb_codebook_lut checks=%0d", checks);
        else $display("FAIL tb_codebook_lut errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
